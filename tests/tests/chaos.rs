//! The chaos suite on the embedded backend: many executions over every bundle and shape while
//! the fault layer (tests/src/chaos.rs) loses, duplicates, delays and fails messages, loses
//! acknowledgements, fails blob and guard operations, crashes workers at commit-protocol
//! points and skews the clock, and the simulators answer 429s, 5xx, slow responses, failed
//! and refused jobs, lost, duplicated and late callbacks; forged callbacks are posted and
//! executions are canceled or run past their deadline. A few executions' outcome events are
//! refused by the downstream sink until they are parked (their outbox cannot be applied), and
//! executions with a customer `webhook_url` meet an endpoint that fails a share of deliveries
//! (503s, answers after the sender gave up) or is down, and are redriven once it is healthy.
//! Then the faults stop, the queues drain, the reconciler runs, and the invariants are checked
//! for every accepted execution, the reconciler's passes and the providers' concurrency.
//!
//! Seeded and reproducible from the printed seed: `CHAOS_SEED=... CHAOS_EXECUTIONS=...
//! cargo nextest run -p executor-tests --test chaos --no-capture`. CI runs 600 executions;
//! docs/chaos.md has the long run (10,000+).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::{Client, CreateOptions};
use executor_lifecycle::{GuardStore, InflightLimiter, Status};
use executor_tests::Harness;
use executor_tests::chaos::{
    Chaos, ChaosBlobs, ChaosCrashes, ChaosEvents, ChaosGuards, ChaosQueue, Rates, Receiver,
    ReconcileTally, Refusals, SkewedClock,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one execution is asked to do.
#[derive(Debug, Clone)]
struct Plan {
    model: &'static str,
    provider: &'static str,
    prompt: String,
    cancel_after_ms: Option<u64>,
    max_duration_seconds: Option<u64>,
    forge_callback: bool,
    /// Post a genuine, freshly signed webhook of another execution's job to this one.
    foreign_callback: bool,
    /// A customer webhook: `flaky` (a share of deliveries fail) or `down` (all fail while the
    /// chaos is on).
    webhook: Option<&'static str>,
    /// The downstream sink refuses its outcome event until it is parked: its final outbox
    /// cannot be applied.
    hold_outbox: bool,
    /// A fallback model (a chain of two): the prompt's fault is then the primary's alone
    /// (`sim:only=`), so the fallback is asked to behave.
    fallback: Option<&'static str>,
}

/// The fallback of the chained plans: fal's image model falls back on Replicate's.
const CHAIN: (&str, &str) = ("fal-ai/flux-dev", "black-forest-labs/flux-schnell");

/// The customer webhook secret (what the receiver verifies with).
const WEBHOOK_SECRET: &str = "whsec_ZGV2LW91dGJvdW5kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM=";
/// The sender gives up on an attempt after this; a slow receiver answers after `SLOW_MS`.
const WEBHOOK_TIMEOUT_MS: u64 = 1_000;
const SLOW_MS: u64 = 1_500;
/// Capacity of each limited provider at CI size (the bundles leave them unlimited).
const CAPACITY: [(&str, u32); 3] = [("runway", 8), ("fal", 6), ("replicate", 8)];

/// The capacities of a run of `n` executions: the CI size's, grown with the square root of
/// the size beyond it (x4 at 10,000), so a long run is still capacity-bound at its peaks yet
/// drains within the suite's deadline (at x1, 10,000 executions queue behind 22 slots).
fn capacities(n: usize) -> Vec<(&'static str, u32)> {
    let factor = ((n / 600).max(1) as f64).sqrt().floor() as u32;
    CAPACITY.iter().map(|(p, c)| (*p, c * factor)).collect()
}

const MODELS: [(&str, &str, &str); 4] = [
    ("openai/gpt-image-1", "openai", "immediate"),
    ("runway/gen4-turbo", "runway", "polling"),
    ("fal-ai/flux-dev", "fal", "polling"),
    ("black-forest-labs/flux-schnell", "replicate", "callback"),
];

/// Whether plan `i` of `n` holds its outbox: one in 250, and at least one per run.
fn holds_outbox(seed: u64, i: usize, n: usize) -> bool {
    i % 250 == (seed % 250) as usize || i == (seed as usize) % n.max(1)
}

fn plan(i: usize, rng: &mut StdRng, hold_outbox: bool) -> Plan {
    let (model, provider, shape) = MODELS[rng.random_range(0..MODELS.len())];
    let duration = rng.random_range(100..1500);
    let faults: Vec<String> = match shape {
        "immediate" => vec![
            "sim:rate_limit=1".into(),
            "sim:server_error=1".into(),
            "sim:content_policy".into(),
            "sim:invalid".into(),
            "sim:hang_once=600".into(),
        ],
        "polling" => vec![
            format!("sim:duration={duration}"),
            "sim:poll_error=1".into(),
            "sim:fail".into(),
            "sim:rate_limit=1".into(),
            "sim:server_error=1".into(),
            "sim:throttled".into(),
            "sim:empty_output".into(),
            // The provider made the job, then the network lost the answer.
            "sim:drop_after_create".into(),
            "sim:error_after_create=502".into(),
            "sim:error_after_create=504".into(),
        ],
        _ => vec![
            "sim:lose_callback".into(),
            "sim:duplicate_callback".into(),
            "sim:late_callback=500".into(),
            format!("sim:duration={duration}"),
            "sim:fail".into(),
            "sim:rate_limit=1".into(),
            "sim:drop_after_create".into(),
            "sim:error_after_create=502".into(),
        ],
    };
    let fault = if rng.random_bool(0.5) {
        String::new()
    } else {
        faults[rng.random_range(0..faults.len())].clone()
    };
    let past_deadline = shape != "immediate" && rng.random_bool(0.02);
    let mut p = Plan {
        model,
        provider,
        prompt: if past_deadline {
            format!("chaos {i} sim:duration=8000")
        } else {
            format!("chaos {i} {fault}")
        },
        cancel_after_ms: (shape != "immediate" && rng.random_bool(0.03))
            .then(|| rng.random_range(0..400)),
        max_duration_seconds: past_deadline.then_some(1),
        forge_callback: shape == "callback" && rng.random_bool(0.1),
        foreign_callback: shape == "callback" && rng.random_bool(0.15),
        webhook: None,
        hold_outbox,
        fallback: None,
    };
    // A share of fal's executions run as a chain falling back on Replicate.
    if model == CHAIN.0 && !past_deadline && rng.random_bool(0.3) {
        p.fallback = Some(CHAIN.1);
        p.prompt = format!("chaos {i} sim:only=fal {fault}");
    }
    // Finishes shortly before a 1 s deadline: the last look at the deadline must deliver it.
    if !past_deadline && shape != "immediate" && rng.random_bool(0.02) {
        p.prompt = format!("chaos {i} sim:duration={}", rng.random_range(400..800));
        p.max_duration_seconds = Some(1);
    }
    if rng.random_bool(0.10) {
        p.webhook = Some(if rng.random_bool(0.3) {
            "down"
        } else {
            "flaky"
        });
    }
    if hold_outbox {
        // A polling job long enough that its id is known to the sink's refusal before its
        // outcome event exists.
        (p.model, p.provider) = ("runway/gen4-turbo", "runway");
        p.prompt = format!("chaos {i} hold sim:duration=1500");
        (p.cancel_after_ms, p.max_duration_seconds) = (None, None);
        (p.forge_callback, p.foreign_callback) = (false, false);
        p.fallback = None;
    }
    p
}

/// Creates with an idempotency key, retrying while the API answers 5xx (a store failure or a
/// crash during acceptance); None if it never accepted.
async fn create(
    client: &Client,
    schema: &Value,
    p: &Plan,
    key: &str,
    hooks: &str,
) -> Option<String> {
    let opts = CreateOptions {
        idempotency_key: Some(key.to_string()),
        max_duration_seconds: p.max_duration_seconds,
        webhook_url: p.webhook.map(|mode| format!("{hooks}/{mode}/{key}")),
        fallbacks: p.fallback.map(|f| vec![f.to_string()]).unwrap_or_default(),
        ..Default::default()
    };
    let input = Harness::input(schema, &p.prompt);
    for _ in 0..20 {
        match client.create(p.model, &input, &opts).await {
            Ok((status, body)) if status < 300 => {
                return Some(body["id"].as_str().unwrap().to_string());
            }
            Ok((status, body)) => assert!(status >= 500, "{status}: {body}"),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Posts the prediction of Replicate job `job` (as the simulator holds it), signed with the
/// account's one webhook secret, to execution `id`'s callback URL: a genuine callback of
/// another job.
async fn foreign(h_url: &str, sims_base: &str, secret: &str, id: &str, job: &str) -> u16 {
    use executor_simulators::signing::{decode_whsec, standard_webhooks_signature};
    let http = reqwest::Client::new();
    let Ok(resp) = http
        .get(format!("{sims_base}/v1/predictions/{job}"))
        .bearer_auth("r8_chaos")
        .send()
        .await
    else {
        return 0;
    };
    let body = resp.bytes().await.unwrap_or_default().to_vec();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let msg = format!("msg_foreign_{id}");
    let sig = standard_webhooks_signature(&decode_whsec(secret).unwrap(), &msg, ts, &body).unwrap();
    http.post(format!("{h_url}/v1/webhooks/replicate/{id}"))
        .header("content-type", "application/json")
        .header("webhook-id", msg)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn forge(url: &str, id: &str) -> u16 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    reqwest::Client::new()
        .post(format!("{url}/v1/webhooks/replicate/{id}"))
        .header("content-type", "application/json")
        .header("webhook-id", format!("msg_forged_{id}"))
        .header("webhook-timestamp", now.to_string())
        .header(
            "webhook-signature",
            "v1,Zm9yZ2VkIHNpZ25hdHVyZSBvZiAzMiBieXRlcyEhISE=",
        )
        .body(r#"{"id":"forged","status":"succeeded","output":["https://evil.example/x.png"]}"#)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariants_hold_under_chaos() {
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let n: usize = std::env::var("CHAOS_EXECUTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let skew_ms = (seed % 4001) as i64 - 2000;
    println!("chaos seed {seed}, {n} executions, clock skew {skew_ms} ms");
    println!(
        "reproduce: CHAOS_SEED={seed} CHAOS_EXECUTIONS={n} cargo nextest run -p executor-tests --test chaos --no-capture"
    );
    let chaos = Chaos::new(seed, Rates::default());
    let started = Instant::now();
    let refusals = Refusals::new();
    let tally = Arc::new(parking_lot::Mutex::new(ReconcileTally::default()));
    let (receiver, hooks) = Receiver::start(chaos.clone(), WEBHOOK_SECRET, SLOW_MS).await;
    let (cq, cb, cg, cc) = (chaos.clone(), chaos.clone(), chaos.clone(), chaos.clone());
    let (ce, cr, ct) = (chaos.clone(), refusals.clone(), tally.clone());
    let h = Harness::start_with(move |o| {
        o.webhook_secret = WEBHOOK_SECRET.into();
        o.wrap_events = Some(Arc::new(move |inner| {
            Arc::new(ChaosEvents {
                inner,
                chaos: ce.clone(),
                refusals: cr.clone(),
            }) as Arc<dyn executor_lifecycle::EventSink>
        }));
        o.wrap_webhooks = Some(Arc::new(|_| {
            Arc::new(
                executor_bundles::StandardWebhookSender::with_timeout(
                    WEBHOOK_SECRET,
                    executor_lifecycle::netguard::OutboundPolicy::dev(),
                    Duration::from_millis(WEBHOOK_TIMEOUT_MS),
                )
                .unwrap(),
            ) as Arc<dyn executor_lifecycle::WebhookSender>
        }));
        o.on_reconcile = Some(Arc::new(move |pass| ct.lock().add(pass)));
        o.wrap_queue = Some(Arc::new(move |q| {
            Arc::new(ChaosQueue {
                inner: q,
                chaos: cq.clone(),
            }) as Arc<dyn executor_lifecycle::Queue>
        }));
        o.wrap_blobs = Some(Arc::new(move |b| {
            Arc::new(ChaosBlobs {
                inner: b,
                chaos: cb.clone(),
            }) as Arc<dyn executor_lifecycle::BlobStore>
        }));
        o.wrap_guards = Some(Arc::new(move |g| {
            Arc::new(ChaosGuards {
                inner: g,
                chaos: cg.clone(),
            }) as Arc<dyn executor_lifecycle::GuardStore>
        }));
        o.crash = Some(Arc::new(ChaosCrashes(cc)));
        o.clock = Arc::new(SkewedClock(skew_ms));
        for (p, cap) in capacities(n) {
            o.capacity_overrides.insert(p.into(), cap);
        }
        o.worker_concurrency = 16;
        o.lifecycle.budgets = executor_tests::chaos::chaos_budgets("dev");
    })
    .await;
    let models = h.client.models().await.unwrap();
    let schema_of = |model: &str| -> Value {
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == model)
            .unwrap()["input_schema"]
            .clone()
    };

    // Plans come from the seed alone, in order.
    let mut rng = StdRng::seed_from_u64(seed);
    let plans: Vec<Plan> = (0..n)
        .map(|i| plan(i, &mut rng, holds_outbox(seed, i, n)))
        .collect();
    let mut provider_faults: BTreeMap<String, u64> = BTreeMap::new();
    for p in &plans {
        if let Some(d) = p.prompt.split_whitespace().find(|w| w.starts_with("sim:")) {
            let name = d.split('=').next().unwrap().to_string();
            *provider_faults
                .entry(format!("{} {name}", p.provider))
                .or_default() += 1;
        }
    }

    // Create, 16 at a time; cancels and forged callbacks are fired from their own tasks.
    let mut accepted: Vec<(String, Plan)> = Vec::new();
    let mut refused_creates = 0;
    let mut side = tokio::task::JoinSet::new();
    let forged = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let replicate_jobs = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    // When each cancel was first asked for (ms, the providers' clock).
    let cancels_at = Arc::new(parking_lot::Mutex::new(BTreeMap::<String, i64>::new()));
    for chunk in plans.chunks(16).enumerate() {
        let (c, batch) = chunk;
        let mut set = tokio::task::JoinSet::new();
        for (j, p) in batch.iter().enumerate() {
            let client = h.client.clone();
            let schema = schema_of(p.model);
            let p = p.clone();
            let key = format!("chaos-{seed}-{}", c * 16 + j);
            let hooks = hooks.clone();
            set.spawn(async move { (create(&client, &schema, &p, &key, &hooks).await, p) });
        }
        while let Some(r) = set.join_next().await {
            let (id, p) = r.unwrap();
            let Some(id) = id else {
                refused_creates += 1;
                continue;
            };
            if p.hold_outbox {
                refusals.refuse(&id);
            }
            if let Some(ms) = p.cancel_after_ms {
                let client = h.client.clone();
                let id = id.clone();
                let cancels_at = cancels_at.clone();
                chaos.count("cancel requested");
                side.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    cancels_at.lock().insert(id.clone(), now_ms());
                    for _ in 0..20 {
                        if client.cancel(&id).await.is_ok() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
            }
            if p.forge_callback {
                let (url, id, forged, chaos) =
                    (h.sys.url.clone(), id.clone(), forged.clone(), chaos.clone());
                side.spawn(async move {
                    let status = forge(&url, &id).await;
                    assert!(
                        status == 401 || status == 503,
                        "forged callback answered {status}"
                    );
                    chaos.count("forged callback");
                    forged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
            if p.foreign_callback
                && let Some(other_job) = replicate_jobs.lock().last().cloned()
            {
                let (url, base, secret, id, chaos) = (
                    h.sys.url.clone(),
                    h.sys.simulators.as_ref().unwrap().base_url("replicate"),
                    h.sys
                        .simulators
                        .as_ref()
                        .unwrap()
                        .replicate_webhook_secret()
                        .to_string(),
                    id.clone(),
                    chaos.clone(),
                );
                side.spawn(async move {
                    let status = foreign(&url, &base, &secret, &id, &other_job).await;
                    // Refused (401: another job's), stored for the check at consumption (200,
                    // before this execution's job id is known), or a store fault (503).
                    assert!(
                        matches!(status, 200 | 401 | 503),
                        "foreign callback answered {status}"
                    );
                    chaos.count("foreign callback (another job's, genuinely signed)");
                });
            }
            if p.provider == "replicate" {
                let (client, id, jobs) = (h.client.clone(), id.clone(), replicate_jobs.clone());
                side.spawn(async move {
                    for _ in 0..40 {
                        if let Ok(v) = client.get(&id).await
                            && let Some(job) = v["provider_job_id"].as_str()
                        {
                            jobs.lock().push(job.to_string());
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
            }
            accepted.push((id, p));
        }
    }
    while let Some(r) = side.join_next().await {
        r.unwrap();
    }
    assert_eq!(refused_creates, 0, "a create was never accepted");
    let created_in = started.elapsed();

    // Faults on while most of the work runs, then off: the system must finish on its own. The
    // held outboxes stay refused until every one of them is parked and shown in the failure
    // piles (faults stay on meanwhile, so the reconciler has other work beside them); then the
    // sink takes their events again.
    let held: std::collections::BTreeSet<String> = refusals.ids();
    let faults_until = Instant::now() + Duration::from_secs(20);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut faults_on = true;
    let mut parked_shown = 0u64;
    loop {
        let counts = h.sys.store.count_by_status().await.unwrap();
        let finals: u64 = counts
            .iter()
            .filter(|(s, _)| s == "finalized" || s == "finalized_degraded")
            .map(|(_, n)| *n)
            .sum();
        if !refusals.is_released() && held.is_subset(&tally.lock().parked_ids) {
            let piles = h.client.failures("24h", None, None).await.unwrap();
            let shown: std::collections::BTreeSet<String> = h
                .sys
                .store
                .list(&executor_lifecycle::ListQuery {
                    tenant: Some("dev".into()),
                    parked: true,
                    limit: 10_000,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|g| g.id)
                .collect();
            if held.is_subset(&shown) {
                parked_shown = piles["parked"].as_u64().unwrap_or(0);
                assert!(
                    parked_shown >= held.len() as u64,
                    "parked executions not in the piles: {piles} (seed {seed})"
                );
                refusals.release();
            }
        }
        if faults_on
            && refusals.is_released()
            && (Instant::now() > faults_until || finals as usize * 10 >= accepted.len() * 9)
        {
            chaos.stop();
            faults_on = false;
        }
        let mut settled = finals as usize == accepted.len() && refusals.is_released();
        for id in &held {
            if !settled {
                break;
            }
            let g = GuardStore::get(h.sys.store.as_ref(), id)
                .await
                .unwrap()
                .unwrap();
            settled = g.outbox.is_empty();
        }
        if settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every execution finished: {counts:?}, held outboxes released: {}, parked: {:?} of {held:?} (seed {seed})",
            refusals.is_released(),
            tally.lock().parked_ids
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    chaos.stop();
    // The customer endpoint is healthy now: the degraded deliveries are redriven.
    let mut redriven = 0u64;
    for (id, p) in &accepted {
        let g = GuardStore::get(h.sys.store.as_ref(), id)
            .await
            .unwrap()
            .unwrap();
        if g.status() == Status::FinalizedDegraded {
            assert!(p.webhook.is_some(), "{id} degraded without a webhook");
            let (status, body) = h.client.redrive(id).await.unwrap();
            assert_eq!(status, 200, "redrive of {id}: {body} (seed {seed})");
            redriven += 1;
        }
    }
    // The reconciler has run meanwhile (every 300 ms); run it once more and let outboxes settle.
    let last = h.sys.engine.reconcile().await;
    tally.lock().add(&last);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let drained_in = started.elapsed();

    // Invariants, per accepted execution.
    let events = h.sys.store.outcome_events().await.unwrap();
    let mut events_by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in &events {
        events_by
            .entry(e.execution_id.as_str())
            .or_default()
            .push(e.event_id.as_str());
    }
    let stats = h.sys.simulators.as_ref().unwrap().stats();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut ambiguous = 0;
    let mut own_outputs = 0u64;
    let mut webhook_executions = 0u64;
    let mut finished_in_time = 0u64;
    let (mut near_deadline, mut canceled_late) = (0u64, 0u64);
    let mut owned_jobs = std::collections::HashSet::<String>::new();
    let (mut chained, mut fell_back) = (0u64, 0u64);
    let mut settlements = executor_tests::chaos::Settlements::default();
    for (id, p) in &accepted {
        let g = GuardStore::get(h.sys.store.as_ref(), id)
            .await
            .unwrap()
            .unwrap();
        settlements.add(&g, seed);
        assert!(
            g.status().is_final(),
            "{id} is {:?} (seed {seed})",
            g.status()
        );
        // Nothing left to apply, nothing parked.
        assert!(
            g.outbox.is_empty(),
            "{id}: outbox left pending: {:?} (seed {seed})",
            g.outbox
        );
        assert!(g.parked().is_none(), "{id} still parked (seed {seed})");
        let records = h.sys.engine.transitions(id).await.unwrap();
        // Explains itself: versions 0..=n, from acceptance to the status it is in.
        assert!(!records.is_empty(), "{id} has no history");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.version, i as u64, "{id}: history has a gap (seed {seed})");
        }
        assert_eq!(records[0].event.as_str(), "accepted", "{id}");
        assert_eq!(records.last().unwrap().to, g.status(), "{id}");
        // Exactly one terminal outcome.
        // (Transitions into an outcome: a delivery retry stays in it and does not count.)
        let outcomes_committed: Vec<Status> = records
            .iter()
            .filter(|r| !r.from.is_some_and(|f| f.is_terminal()))
            .map(|r| r.to)
            .filter(|s| s.is_terminal() && !s.is_final())
            .collect();
        assert_eq!(
            outcomes_committed.len(),
            1,
            "{id}: {outcomes_committed:?} (seed {seed})"
        );
        assert_eq!(g.hot.outcome, Some(outcomes_committed[0]), "{id}");
        *outcomes
            .entry(outcomes_committed[0].as_str().to_string())
            .or_default() += 1;
        // One outcome event id.
        let ev = events_by.get(id.as_str()).cloned().unwrap_or_default();
        assert_eq!(
            ev,
            vec![format!("evt_{id}").as_str()],
            "{id}: outcome events (seed {seed})"
        );
        // No execution's outputs came from another job: its raw final answer is its own job's.
        if g.provider == "replicate" && outcomes_committed[0] == Status::Succeeded {
            let raw: Value = reqwest::Client::new()
                .get(format!("{}/v1/executions/{id}/raw", h.sys.url))
                .bearer_auth(&h.sys.dev_key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                raw["raw"]["id"].as_str(),
                g.hot.job_id.as_deref(),
                "{id}: outputs of another job (seed {seed})"
            );
            own_outputs += 1;
        }
        // Its customer saw its outcome, once per event id whatever the retries: delivered,
        // or degraded and then redriven.
        if p.webhook.is_some() {
            assert_eq!(g.status(), Status::Finalized, "{id} (seed {seed})");
            let taken = receiver.taken.lock().get(&format!("evt_{id}")).cloned();
            let taken = taken.unwrap_or_else(|| {
                panic!("{id}: the customer never took its outcome (seed {seed})")
            });
            let outcome = outcomes_committed[0].as_str();
            assert!(
                taken.iter().all(|s| s == outcome),
                "{id}: the customer saw {taken:?}, the outcome is {outcome} (seed {seed})"
            );
            webhook_executions += 1;
        }
        // What the provider finished before the deadline, and before any cancel was asked
        // for, is delivered: never timed_out or canceled. (Its job: the one whose id the
        // execution committed; the providers' clock is the executor's minus the skew.)
        if let (Some(job_id), Some(sim)) = (
            g.hot.job_id.as_deref(),
            executor_simulators::Provider::parse(&g.provider),
        ) && let Some(job) = h
            .sys
            .simulators
            .as_ref()
            .unwrap()
            .state()
            .jobs
            .get(sim, job_id)
            && let executor_simulators::jobs::Phase::Done(_) = job.phase(std::time::Instant::now())
        {
            let finished_ms = ms_of(job.created_wall + job.duration);
            let deadline_ms = g.deadline_ms - skew_ms;
            let cancel_first = cancels_at
                .lock()
                .get(id.as_str())
                .is_some_and(|c| *c <= finished_ms);
            if finished_ms < deadline_ms && !cancel_first {
                finished_in_time += 1;
                // The cases the rule is about: a short deadline, a cancel after the finish.
                near_deadline += u64::from(p.max_duration_seconds.is_some());
                canceled_late += u64::from(cancels_at.lock().contains_key(id.as_str()));
                assert!(
                    !matches!(outcomes_committed[0], Status::TimedOut | Status::Canceled),
                    "{id}: its job finished at {finished_ms} before the deadline {deadline_ms} and any cancel ({:?}), yet it ended {:?} (seed {seed})",
                    cancels_at.lock().get(id.as_str()),
                    outcomes_committed[0]
                );
            }
        }
        owned_jobs.extend(g.hot.job_id.clone());
        owned_jobs.extend(g.hot.attempts.iter().filter_map(|a| a.job_id.clone()));
        // No provider job twice unless the submit was declared ambiguous: per attempt, at
        // the attempt's provider (an ambiguous submit never falls back).
        let was_ambiguous = records
            .iter()
            .any(|r| r.event.as_str() == "submit_ambiguous");
        ambiguous += was_ambiguous as u64;
        let mut providers: Vec<&str> = g.hot.attempts.iter().map(|a| a.provider.as_str()).collect();
        providers.push(g.provider.as_str());
        providers.dedup();
        for provider in &providers {
            let creates = stats.creates_for_prompt(provider, &p.prompt);
            assert!(
                creates <= 1 || was_ambiguous,
                "{id}: {creates} {provider} jobs for one execution (seed {seed})"
            );
        }
        // A chain: one attempt per step at most, the fallback only after a class that falls
        // back, and the outcome the last attempt's.
        if p.fallback.is_some() {
            chained += 1;
            assert!(
                g.hot.attempts.len() <= 1,
                "{id}: {:?} (seed {seed})",
                g.hot.attempts
            );
            if let Some(first) = g.hot.attempts.first() {
                fell_back += 1;
                let class = first.error.as_ref().map(|f| f.class);
                assert!(
                    class.is_some_and(
                        |c| executor_lifecycle::fallback::FALLBACK_CLASSES.contains(&c)
                    ),
                    "{id}: fell back after {class:?} (seed {seed})"
                );
                assert_eq!(g.model, CHAIN.1, "{id}");
            }
        } else {
            assert!(
                g.hot.attempts.is_empty(),
                "{id}: attempts without a chain (seed {seed})"
            );
        }
    }
    // Leases back to zero.
    for p in executor_simulators::Provider::ALL.map(|p| p.as_str()) {
        assert_eq!(
            h.sys.limiter.inflight(p).await.unwrap(),
            0,
            "{p} leases left (seed {seed})"
        );
    }
    assert!(
        forged.load(std::sync::atomic::Ordering::SeqCst) > 0 || n < 100,
        "no forged callback was sent"
    );
    // The customer endpoint: every signature verified, nothing taken that is not a webhook
    // execution's outcome, and the duplicates (retries after slow answers, redrives) were
    // deduplicated by event id.
    assert_eq!(
        receiver
            .bad_signatures
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    let webhook_ids: std::collections::BTreeSet<String> = accepted
        .iter()
        .filter(|(_, p)| p.webhook.is_some())
        .map(|(id, _)| format!("evt_{id}"))
        .collect();
    assert_eq!(receiver.taken_ids(), webhook_ids, "(seed {seed})");
    let attempts = receiver.attempts.lock().len();
    let duplicates: usize = receiver.taken.lock().values().map(|v| v.len() - 1).sum();
    if n >= 300 {
        assert!(
            redriven > 0,
            "no delivery was degraded and redriven (seed {seed})"
        );
    }
    // Every reconciler pass completed; the held outboxes were parked, shown and recovered,
    // and the passes that failed them still re-drove the others.
    let tally = tally.lock().clone();
    assert!(
        tally.pass_errors.is_empty(),
        "reconcile passes failed: {:?} (seed {seed})",
        tally.pass_errors
    );
    assert!(tally.passes > 0);
    assert!(
        held.is_subset(&tally.parked_ids),
        "held {held:?}, parked {:?} (seed {seed})",
        tally.parked_ids,
    );
    // Recovered: final with no outbox pending (checked with every execution above). The
    // reconciler applies the outbox, or the execution's own message does first when it is
    // delivered again (a failed handling is redelivered), so the reconciler's report of a
    // recovery is counted, not required.
    if n >= 300 {
        assert!(
            tally.passes_with_failures_and_progress > 0,
            "no pass re-drove others while one failed (seed {seed})"
        );
    }
    let piles = h.client.failures("24h", None, None).await.unwrap();
    assert_eq!(piles["parked"], 0, "still parked: {piles} (seed {seed})");
    // Budgets: every reservation settled once with its execution's billed cost.
    let spent = settlements.verify(h.sys.store.as_ref(), seed).await;
    // Provider-side concurrency never exceeded the capacity, measured at the simulators: the
    // most jobs unfinished at one instant (all jobs; and the executions' own jobs, leaving out
    // the orphans of ambiguous creates, which no lease covers).
    let sims = h.sys.simulators.as_ref().unwrap();
    let mut high_water = Vec::new();
    for (p, cap) in capacities(n) {
        let sim = executor_simulators::Provider::parse(p).unwrap();
        let all = stats.provider(p).max_inflight;
        let own = sims
            .state()
            .jobs
            .max_concurrent(sim, |j| owned_jobs.contains(&j.id));
        high_water.push(format!("{p} {own} own / {all} all of {cap}"));
        assert!(
            own <= u64::from(cap),
            "{p}: {own} of its executions' jobs ran at once on a capacity of {cap} (seed {seed})"
        );
        // Beyond the executions' own jobs, only orphans: jobs an ambiguous create made after
        // its execution was failed `submit_ambiguous` (or a late job id, canceled), which no
        // lease covers — the watchdog's terminal step released it (docs/chaos.md).
        let orphans = sims
            .state()
            .jobs
            .max_concurrent(sim, |j| !owned_jobs.contains(&j.id));
        assert!(
            all <= u64::from(cap) + orphans,
            "{p}: {all} jobs ran at once on a capacity of {cap} ({own} the executions' own, at most {orphans} orphans at once) (seed {seed})"
        );
    }

    println!(
        "\nchaos run: seed {seed}, {} executions accepted",
        accepted.len()
    );
    println!(
        "created in {:.1} s, all final and checked at {:.1} s",
        created_in.as_secs_f64(),
        drained_in.as_secs_f64()
    );
    println!("\n| fault injected | count |\n|---|---|");
    for (k, v) in chaos.counts() {
        println!("| {k} | {v} |");
    }
    println!("\n| provider behaviour asked of the simulator | executions |\n|---|---|");
    for (k, v) in &provider_faults {
        println!("| {k} | {v} |");
    }
    println!("\n| outcome | executions |\n|---|---|");
    for (k, v) in &outcomes {
        println!("| {k} | {v} |");
    }
    println!(
        "\nsubmit_ambiguous: {ambiguous}; outcome events: {}",
        events.len()
    );
    println!(
        "\nreconciler: {} passes, {} pass errors, {} per-execution failures ({} executions), {} re-driven or rolled forward, {} passes re-drove others while one failed; held outboxes {} (parked {}, shown {parked_shown}, recovered {})",
        tally.passes,
        tally.pass_errors.len(),
        tally.execution_failures,
        tally.failed_ids.len(),
        tally.redriven,
        tally.passes_with_failures_and_progress,
        held.len(),
        held.intersection(&tally.parked_ids).count(),
        held.intersection(&tally.recovered_ids).count(),
    );
    println!(
        "customer webhooks: {webhook_executions} executions, {attempts} delivery attempts, {} event ids taken, {duplicates} duplicates deduplicated, {redriven} degraded and redriven",
        receiver.taken_ids().len()
    );
    println!(
        "provider concurrency high-water marks: {}",
        high_water.join(", ")
    );
    println!(
        "finished before the deadline and any cancel, hence not timed_out or canceled: {finished_in_time} executions ({near_deadline} with a 1 s deadline, {canceled_late} canceled after their job finished)"
    );
    println!(
        "fallback chains: {chained} executions, {fell_back} fell back to {}",
        CHAIN.1
    );
    if n >= 300 {
        assert!(chained > 0, "no chained execution (seed {seed})");
    }
    println!(
        "budgets: ${:.6} spent over {} executions, nothing left reserved",
        spent as f64 / 1e6,
        accepted.len()
    );
    println!(
        "invariants held: one terminal outcome each, one outcome event id each, no duplicate provider job unless ambiguous, no outputs from another job ({own_outputs} Replicate successes checked), leases at zero, budgets settled to the sum of the costs, every execution final with a gapless history and no outbox pending, every reconciler pass completed, provider concurrency within capacity, what finished before the deadline or the cancel delivered, every customer saw its outcome"
    );
    h.sys.stop().await;
}

fn now_ms() -> i64 {
    ms_of(std::time::SystemTime::now())
}

fn ms_of(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
