//! The chaos suite's fault layer: wrappers over the queue, blob store, guard store and outcome
//! sink ports, a crash injector, a skewed clock, a customer webhook endpoint that fails a share
//! of deliveries, and a tally of the reconciler's passes. Every decision is a hash of (seed, site, the logical
//! operation, how many times that operation was seen), not a draw from a shared generator, so
//! the faults a message, blob or execution meets depend on the seed, not on how tasks
//! interleave. Each injected fault is counted by kind for the report.

use async_trait::async_trait;
use executor_lifecycle::crash::{CrashInjector, CrashPoint};
use executor_lifecycle::engine::ReconcileReport;
use executor_lifecycle::{
    BlobStore, Clock, CommitError, Delivery, EventSink, Guard, GuardStore, IdempotencyItem,
    Inserted, ListQuery, OutcomeEvent, PutOutcome, Queue, QueueName, StoreError,
};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Fault probabilities (0..1) per operation.
#[derive(Debug, Clone)]
pub struct Rates {
    /// A sent message is lost (the reconciler must notice).
    pub drop_message: f64,
    /// A sent message is sent twice.
    pub duplicate_message: f64,
    /// A sent message is delayed by up to `max_extra_delay_ms` (reordering).
    pub delay_message: f64,
    /// Upper bound of an injected delay.
    pub max_extra_delay_ms: u64,
    /// A send fails with a backend error.
    pub send_error: f64,
    /// An acknowledgement is lost: the message is redelivered after its visibility timeout.
    pub lose_ack: f64,
    /// A blob write or read fails.
    pub blob_error: f64,
    /// A guard read or commit fails (before reaching the store).
    pub guard_error: f64,
    /// The worker crashes at a commit-protocol point.
    pub crash: f64,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            drop_message: 0.01,
            duplicate_message: 0.05,
            delay_message: 0.10,
            max_extra_delay_ms: 400,
            send_error: 0.01,
            lose_ack: 0.03,
            blob_error: 0.01,
            guard_error: 0.01,
            crash: 0.01,
        }
    }
}

/// The shared decision maker and fault counters.
pub struct Chaos {
    /// The seed everything derives from.
    pub seed: u64,
    /// Probabilities.
    pub rates: Rates,
    seen: Mutex<HashMap<u64, u64>>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
    /// Faults are injected only while on (off while the suite drains and checks).
    on: std::sync::atomic::AtomicBool,
}

impl Chaos {
    /// A fault layer seeded with `seed`.
    pub fn new(seed: u64, rates: Rates) -> Arc<Chaos> {
        Arc::new(Chaos {
            seed,
            rates,
            seen: Mutex::new(HashMap::new()),
            counts: Mutex::new(BTreeMap::new()),
            on: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Stops injecting faults (the system then drains on its own).
    pub fn stop(&self) {
        self.on.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// A uniform value in [0, 1) for the n-th occurrence of `what` at `site`.
    fn roll(&self, site: &str, what: &str) -> f64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (site, what).hash(&mut h);
        let key = h.finish();
        let n = {
            let mut seen = self.seen.lock();
            let e = seen.entry(key).or_insert(0);
            *e += 1;
            *e
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.seed, key, n).hash(&mut h);
        (h.finish() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True (and counted as `kind`) with probability `p` for this occurrence.
    pub fn hit(&self, kind: &'static str, p: f64, site: &str, what: &str) -> bool {
        if p <= 0.0 || !self.on.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        let yes = self.roll(site, what) < p;
        if yes {
            self.count(kind);
        }
        yes
    }

    /// Counts a fault injected elsewhere (forged callbacks, provider faults).
    pub fn count(&self, kind: &'static str) {
        *self.counts.lock().entry(kind).or_default() += 1;
    }

    /// Faults injected so far, by kind.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().clone()
    }

    fn fraction(&self, site: &str, what: &str) -> f64 {
        self.roll(site, what)
    }

    fn unavailable(kind: &str) -> StoreError {
        StoreError::Unavailable(format!("chaos: injected {kind}"))
    }
}

/// The queue port with lost, duplicated, delayed and failing sends and lost acks.
pub struct ChaosQueue {
    /// The real queue.
    pub inner: Arc<dyn Queue>,
    /// Decisions.
    pub chaos: Arc<Chaos>,
}

#[async_trait]
impl Queue for ChaosQueue {
    async fn send(&self, queue: QueueName, body: &str, delay_ms: u64) -> Result<(), StoreError> {
        let site = queue.as_str();
        let c = &self.chaos;
        if c.hit("send failed", c.rates.send_error, site, body) {
            return Err(Chaos::unavailable("send failure"));
        }
        if c.hit("message lost", c.rates.drop_message, site, body) {
            return Ok(());
        }
        let mut delay = delay_ms;
        if c.hit("message delayed", c.rates.delay_message, site, body) {
            delay += (c.fraction(site, body) * c.rates.max_extra_delay_ms as f64) as u64;
        }
        self.inner.send(queue, body, delay).await?;
        if c.hit("message duplicated", c.rates.duplicate_message, site, body) {
            let extra = (c.fraction(site, body) * c.rates.max_extra_delay_ms as f64) as u64;
            self.inner.send(queue, body, delay + extra).await?;
        }
        Ok(())
    }
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility_ms: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.receive(queue, max, visibility_ms).await
    }
    async fn ack(&self, queue: QueueName, receipt: &str) -> Result<(), StoreError> {
        if self.chaos.hit(
            "ack lost",
            self.chaos.rates.lose_ack,
            queue.as_str(),
            receipt,
        ) {
            return Ok(());
        }
        self.inner.ack(queue, receipt).await
    }
    async fn retry_later(
        &self,
        queue: QueueName,
        receipt: &str,
        delay_ms: u64,
    ) -> Result<(), StoreError> {
        self.inner.retry_later(queue, receipt, delay_ms).await
    }
    async fn dead_letter(
        &self,
        queue: QueueName,
        receipt: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.inner.dead_letter(queue, receipt, body, reason).await
    }
    async fn wait(&self, queue: QueueName, timeout_ms: u64) {
        self.inner.wait(queue, timeout_ms).await
    }
}

/// The blob store with failing writes and reads.
pub struct ChaosBlobs {
    /// The real store.
    pub inner: Arc<dyn BlobStore>,
    /// Decisions.
    pub chaos: Arc<Chaos>,
}

#[async_trait]
impl BlobStore for ChaosBlobs {
    async fn put_once(&self, key: &str, bytes: Vec<u8>) -> Result<PutOutcome, StoreError> {
        if self
            .chaos
            .hit("blob write failed", self.chaos.rates.blob_error, "put", key)
        {
            return Err(Chaos::unavailable("blob write failure"));
        }
        self.inner.put_once(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if self
            .chaos
            .hit("blob read failed", self.chaos.rates.blob_error, "get", key)
        {
            return Err(Chaos::unavailable("blob read failure"));
        }
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }
}

/// The guard store with failing reads and commits (the commit fails before it is made).
pub struct ChaosGuards {
    /// The real store.
    pub inner: Arc<dyn GuardStore>,
    /// Decisions.
    pub chaos: Arc<Chaos>,
}

#[async_trait]
impl GuardStore for ChaosGuards {
    async fn insert(
        &self,
        guard: &Guard,
        idempotency: Option<&IdempotencyItem>,
    ) -> Result<Inserted, StoreError> {
        if self.chaos.hit(
            "guard insert failed",
            self.chaos.rates.guard_error,
            "insert",
            &guard.id,
        ) {
            return Err(Chaos::unavailable("guard insert failure"));
        }
        self.inner.insert(guard, idempotency).await
    }
    async fn get(&self, id: &str) -> Result<Option<Guard>, StoreError> {
        if self
            .chaos
            .hit("guard read failed", self.chaos.rates.guard_error, "get", id)
        {
            return Err(Chaos::unavailable("guard read failure"));
        }
        self.inner.get(id).await
    }
    async fn insert_idempotency(&self, item: &IdempotencyItem) -> Result<Inserted, StoreError> {
        self.inner.insert_idempotency(item).await
    }
    async fn find_idempotency(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<IdempotencyItem>, StoreError> {
        self.inner.find_idempotency(tenant, key).await
    }
    async fn commit(&self, expected: u64, next: &Guard) -> Result<(), CommitError> {
        let what = format!("{}@{expected}", next.id);
        if self.chaos.hit(
            "guard commit failed",
            self.chaos.rates.guard_error,
            "commit",
            &what,
        ) {
            return Err(CommitError::Store(Chaos::unavailable(
                "guard commit failure",
            )));
        }
        self.inner.commit(expected, next).await
    }
    async fn budget(
        &self,
        key: &str,
    ) -> Result<Option<executor_lifecycle::BudgetState>, StoreError> {
        self.inner.budget(key).await
    }
    async fn clear_outbox(&self, id: &str, version: u64) -> Result<(), StoreError> {
        self.inner.clear_outbox(id, version).await
    }
    async fn clear_outbox_of(&self, cleared: &Guard) -> Result<(), StoreError> {
        self.inner.clear_outbox_of(cleared).await
    }
    async fn request_cancel(&self, id: &str) -> Result<(), StoreError> {
        self.inner.request_cancel(id).await
    }
    async fn record_callback(&self, id: &str, callback_id: &str) -> Result<bool, StoreError> {
        self.inner.record_callback(id, callback_id).await
    }
    async fn record_callback_with_body(
        &self,
        id: &str,
        callback_id: &str,
        body: &[u8],
    ) -> Result<Option<bool>, StoreError> {
        self.inner
            .record_callback_with_body(id, callback_id, body)
            .await
    }
    async fn record_rejected_callback(
        &self,
        id: &str,
        at_ms: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.inner.record_rejected_callback(id, at_ms, reason).await
    }
    async fn set_reconcile_failures(
        &self,
        id: &str,
        failures: Option<&executor_lifecycle::ReconcileFailures>,
    ) -> Result<(), StoreError> {
        self.inner.set_reconcile_failures(id, failures).await
    }
    async fn overdue(&self, due_before_ms: i64, limit: usize) -> Result<Vec<Guard>, StoreError> {
        self.inner.overdue(due_before_ms, limit).await
    }
    async fn list(&self, query: &ListQuery) -> Result<Vec<Guard>, StoreError> {
        self.inner.list(query).await
    }
}

/// Crashes the worker at commit-protocol points with the configured probability.
pub struct ChaosCrashes(pub Arc<Chaos>);

impl CrashInjector for ChaosCrashes {
    fn should_crash(&self, point: CrashPoint, execution_id: &str) -> bool {
        self.0.hit(
            "crash in the commit protocol",
            self.0.rates.crash,
            &format!("{point:?}"),
            execution_id,
        )
    }
}

/// The system clock shifted by a fixed offset: the executor's clock disagrees with the
/// providers' (webhook timestamps, `created_at`) by that much.
pub struct SkewedClock(pub i64);

impl Clock for SkewedClock {
    fn now_ms(&self) -> i64 {
        executor_lifecycle::SystemClock.now_ms() + self.0
    }
}

/// Executions whose outcome events the downstream sink refuses until [`Refusals::release`]:
/// their final outbox cannot be applied, for as long as the suite wants (chosen by the seeded
/// plan, not by a roll).
#[derive(Default)]
pub struct Refusals {
    ids: Mutex<std::collections::HashSet<String>>,
    released: std::sync::atomic::AtomicBool,
}

impl Refusals {
    /// Nothing refused yet.
    pub fn new() -> Arc<Refusals> {
        Arc::new(Refusals::default())
    }

    /// Refuses the outcome events of execution `id` from now on.
    pub fn refuse(&self, id: &str) {
        self.ids.lock().insert(id.to_string());
    }

    /// The sink takes every event again.
    pub fn release(&self) {
        self.released
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// True once released.
    pub fn is_released(&self) -> bool {
        self.released.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The executions refused (at any time).
    pub fn ids(&self) -> std::collections::BTreeSet<String> {
        self.ids.lock().iter().cloned().collect()
    }

    fn refuses(&self, id: &str) -> bool {
        !self.is_released() && self.ids.lock().contains(id)
    }
}

/// The outcome sink refusing the events of the executions in [`Refusals`].
pub struct ChaosEvents {
    /// The real sink.
    pub inner: Arc<dyn EventSink>,
    /// Counters.
    pub chaos: Arc<Chaos>,
    /// Whose events are refused.
    pub refusals: Arc<Refusals>,
}

#[async_trait]
impl EventSink for ChaosEvents {
    async fn publish(&self, event: &OutcomeEvent) -> Result<(), StoreError> {
        if self.refusals.refuses(&event.execution_id) {
            self.chaos.count("outcome event refused (outbox held)");
            return Err(StoreError::Unavailable(format!(
                "chaos: the downstream sink refuses {}",
                event.id
            )));
        }
        self.inner.publish(event).await
    }
}

/// What the reconciler's passes did over a run: every pass must complete (a pass-level error
/// is a violation); per-execution failures are allowed and reported.
#[derive(Debug, Default, Clone)]
pub struct ReconcileTally {
    /// Passes that completed.
    pub passes: u64,
    /// Passes that failed as a whole, with the error.
    pub pass_errors: Vec<String>,
    /// Per-execution failures reported, over all passes.
    pub execution_failures: u64,
    /// Executions re-driven (messages re-sent) or rolled forward (outboxes applied).
    pub redriven: u64,
    /// Passes that reported a failing execution and still re-drove or rolled forward others.
    pub passes_with_failures_and_progress: u64,
    /// Executions reported failing at least once.
    pub failed_ids: std::collections::BTreeSet<String>,
    /// Executions reported parked at least once.
    pub parked_ids: std::collections::BTreeSet<String>,
    /// Executions reported recovered (re-driven after earlier failures).
    pub recovered_ids: std::collections::BTreeSet<String>,
}

impl ReconcileTally {
    /// Counts one pass.
    pub fn add<E: std::fmt::Display>(&mut self, pass: &Result<ReconcileReport, E>) {
        let r = match pass {
            Ok(r) => r,
            Err(e) => {
                self.pass_errors.push(e.to_string());
                return;
            }
        };
        self.passes += 1;
        self.execution_failures += r.failed.len() as u64;
        let progress = (r.redriven + r.outboxes_applied) as u64;
        self.redriven += progress;
        if !r.failed.is_empty() && progress > 0 {
            self.passes_with_failures_and_progress += 1;
        }
        for f in r.failed.iter().chain(&r.backing_off) {
            self.failed_ids.insert(f.execution_id.clone());
            if f.parked {
                self.parked_ids.insert(f.execution_id.clone());
            }
        }
        self.recovered_ids.extend(r.recovered.iter().cloned());
    }
}

/// A customer's webhook endpoint that fails a share of deliveries while the chaos is on, and
/// deduplicates what it takes by event id (`webhook-id`), as the Standard Webhooks receivers
/// are told to. The path says how it treats an execution: `/flaky/...` answers 503 to 25% of
/// the attempts and is slow (answers after the sender gave up, having processed the event:
/// the retry is a duplicate) on 10%, `/down/...` answers 503 to every attempt. Each decision is
/// a hash of (seed, event id, attempt), like every other fault.
pub struct Receiver {
    chaos: Arc<Chaos>,
    secret: String,
    slow_ms: u64,
    /// Every attempt: (event id, answered 2xx in time).
    pub attempts: Mutex<Vec<(String, bool)>>,
    /// Events taken, by event id: the status of each body taken for it (deduplicated: a
    /// repeat is counted, and must carry the same outcome).
    pub taken: Mutex<BTreeMap<String, Vec<String>>>,
    /// Attempts whose signature did not verify.
    pub bad_signatures: std::sync::atomic::AtomicU64,
}

impl Receiver {
    /// Serves a receiver on a free loopback port; returns it and its base URL (append
    /// `/flaky/{anything}` or `/down/{anything}`). `slow_ms` must exceed the sender's timeout.
    pub async fn start(chaos: Arc<Chaos>, secret: &str, slow_ms: u64) -> (Arc<Receiver>, String) {
        let rx = Arc::new(Receiver {
            chaos,
            secret: secret.to_string(),
            slow_ms,
            attempts: Mutex::new(Vec::new()),
            taken: Mutex::new(BTreeMap::new()),
            bad_signatures: std::sync::atomic::AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route("/{mode}/{tag}", axum::routing::post(receive))
            .with_state(rx.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (rx, url)
    }

    /// Distinct event ids taken.
    pub fn taken_ids(&self) -> std::collections::BTreeSet<String> {
        self.taken.lock().keys().cloned().collect()
    }
}

async fn receive(
    axum::extract::State(rx): axum::extract::State<Arc<Receiver>>,
    axum::extract::Path((mode, _tag)): axum::extract::Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    use axum::http::StatusCode;
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if executor_bundles::standard_webhooks::verify(&rx.secret, &pairs, &body, now).is_err() {
        rx.bad_signatures
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let c = &rx.chaos;
    let refuse = match mode.as_str() {
        "down" => c.hit("customer webhook down (503)", 1.0, "webhook-down", &id),
        _ => c.hit("customer webhook answered 503", 0.25, "webhook", &id),
    };
    if refuse {
        rx.attempts.lock().push((id, false));
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let slow = mode != "down" && c.hit("customer webhook too slow", 0.10, "webhook-slow", &id);
    let status = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["status"].as_str().map(str::to_string))
        .unwrap_or_default();
    // Processed (deduplicated by event id), then answered — late, for a slow one.
    rx.taken.lock().entry(id.clone()).or_default().push(status);
    if slow {
        tokio::time::sleep(std::time::Duration::from_millis(rx.slow_ms)).await;
    }
    rx.attempts.lock().push((id, !slow));
    StatusCode::NO_CONTENT
}

/// The budgets of a chaos run: big enough to refuse nothing, two per execution (a month's and
/// a total), so every create reserves on two items in one transaction.
pub fn chaos_budgets(tenant: &str) -> Vec<executor_lifecycle::BudgetRule> {
    [
        executor_lifecycle::BudgetPeriod::Month,
        executor_lifecycle::BudgetPeriod::Total,
    ]
    .into_iter()
    .map(|period| executor_lifecycle::BudgetRule {
        tenant: tenant.into(),
        period,
        limit_usd: 1_000_000.0,
        model: None,
    })
    .collect()
}

/// The settlement invariant: every execution's reservation was settled exactly once with its
/// billable cost, and each budget item's totals are the sum over its executions (nothing left
/// reserved, nothing settled twice, nothing lost).
#[derive(Default)]
pub struct Settlements {
    by_key: std::collections::BTreeMap<String, (i64, u64)>,
}

impl Settlements {
    /// Checks one final execution and counts it.
    pub fn add(&mut self, g: &Guard, seed: u64) {
        let hold = g
            .budget
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no budget hold (seed {seed})", g.id));
        let billed = g
            .hot
            .cost
            .as_ref()
            .filter(|c| c.billable)
            .map_or(0, |c| c.provider_usd_micros);
        let settled = hold
            .settled
            .unwrap_or_else(|| panic!("{}: final but not settled (seed {seed})", g.id));
        assert_eq!(
            settled.actual_usd_micros, billed,
            "{}: settled {} for a billed cost of {billed} (seed {seed})",
            g.id, settled.actual_usd_micros
        );
        for line in &hold.lines {
            let e = self.by_key.entry(line.key.clone()).or_default();
            e.0 += billed;
            e.1 += 1;
        }
    }

    /// Compares each budget item as stored with the sums; returns the total spent.
    pub async fn verify(&self, store: &dyn GuardStore, seed: u64) -> i64 {
        assert!(!self.by_key.is_empty(), "no budget item (seed {seed})");
        let mut total = 0;
        for (key, (spent, count)) in &self.by_key {
            let state = store
                .budget(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("budget item {key} missing (seed {seed})"));
            assert_eq!(
                state.reserved_usd_micros, 0,
                "{key}: {} still reserved after every execution settled (seed {seed})",
                state.reserved_usd_micros
            );
            assert_eq!(
                state.spent_usd_micros, *spent,
                "{key}: spent {} but the executions cost {spent} (seed {seed})",
                state.spent_usd_micros
            );
            assert_eq!(
                state.settled_executions, *count,
                "{key}: settled {} of {count} executions (seed {seed})",
                state.settled_executions
            );
            total = *spent;
        }
        total
    }
}
