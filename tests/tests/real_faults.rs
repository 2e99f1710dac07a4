//! The lifecycle under the faults real networks and providers produce (issue "The lifecycle
//! under real faults"): a create the provider received and then lost the connection of, a
//! gateway's 5xx after the job was created, genuine signed callbacks of another job, bodies
//! that are not job payloads, a job that finished within the last poll interval before the
//! deadline, an acceptance whose first message could not be sent, and a reconciler pass that
//! meets an execution it cannot re-drive. Each one failed on the code before the change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use executor_lifecycle::{Queue, QueueName, StoreError};
use executor_tests::Harness;
use parking_lot::Mutex;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const POLLING: &str = "runway/gen4-turbo";
const CALLBACK: &str = "black-forest-labs/flux-schnell";

async fn schema(h: &Harness, model: &str) -> Value {
    let models = h.client.models().await.unwrap();
    models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == model)
        .unwrap_or_else(|| panic!("no {model}"))["input_schema"]
        .clone()
}

fn provider_of(model: &str) -> &'static str {
    if model == POLLING {
        "runway"
    } else {
        "replicate"
    }
}

/// A create whose connection closed after the provider read it, or that a gateway answered
/// 502/504 after the job was created, may have bought a job: it is never sent again by the
/// outbound client or the lifecycle (the bundles' policy is `fail`), and the execution says
/// so with `submit_ambiguous`. Before: the transport re-sent the POST (IncompleteMessage was
/// a "connect" error; 502 was retried) and the lifecycle retried it as `provider_unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_the_provider_may_have_received_is_never_sent_twice() {
    let h = Harness::start().await;
    for model in [POLLING, CALLBACK] {
        let schema = schema(&h, model).await;
        for fault in [
            "sim:drop_after_create",
            "sim:error_after_create=502",
            "sim:error_after_create=504",
        ] {
            let prompt = format!("a lighthouse {fault} {model}");
            let v = h.run(model, &Harness::input(&schema, &prompt)).await;
            assert_eq!(v["outcome"], "failed", "{fault} {model}: {v:#}");
            assert_eq!(v["error"]["class"], "submit_ambiguous", "{fault}: {v:#}");
            assert_eq!(
                h.creates(provider_of(model), &prompt),
                1,
                "{fault} {model}: the create was sent again"
            );
            let records = h.transitions(v["id"].as_str().unwrap()).await;
            // Creates that went out (refusals by the breaker or bulkhead sent nothing).
            let creates: Vec<_> = records
                .iter()
                .flat_map(|r| r.calls.iter())
                .filter(|c| c.method == "POST")
                .filter(|c| !matches!(c.error.as_deref(), Some("circuit open" | "bulkhead full")))
                .collect();
            assert_eq!(creates.len(), 1, "{fault}: {creates:?}");
            assert!(creates[0].retried.is_none(), "{creates:?}");
        }
    }
}

/// The prediction object the simulator holds for a job (what Replicate would send in its
/// webhook), and Standard Webhooks headers signed with the account's one secret.
async fn genuine_replicate_webhook(h: &Harness, job: &str) -> (Value, Vec<(String, String)>) {
    let sims = h.sys.simulators.as_ref().unwrap();
    let prediction: Value = reqwest::Client::new()
        .get(format!(
            "{}/v1/predictions/{job}",
            sims.base_url("replicate")
        ))
        .bearer_auth("r8_test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body = serde_json::to_vec(&prediction).unwrap();
    (prediction, sign_replicate(h, &body))
}

fn sign_replicate(h: &Harness, body: &[u8]) -> Vec<(String, String)> {
    use executor_simulators::signing::{decode_whsec, standard_webhooks_signature};
    let sims = h.sys.simulators.as_ref().unwrap();
    let key = decode_whsec(sims.replicate_webhook_secret()).unwrap();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let id = format!("msg_{}", ulid::Ulid::new());
    let sig = standard_webhooks_signature(&key, &id, ts, body).unwrap();
    vec![
        ("webhook-id".into(), id),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), sig),
    ]
}

async fn post_callback(
    h: &Harness,
    execution: &str,
    body: &[u8],
    headers: &[(String, String)],
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/webhooks/replicate/{execution}", h.sys.url))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn wait_for_job(h: &Harness, id: &str) -> String {
    for _ in 0..500 {
        let v = h.client.get(id).await.unwrap();
        if let Some(job) = v["provider_job_id"].as_str() {
            return job.to_string();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} never got a job id");
}

/// Replicate signs every webhook of an account with one secret: a genuine, freshly signed
/// webhook of job A posted to execution B's callback URL is refused (recorded with the
/// reason) and B ends with its own job's output. Before: B completed with A's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genuine_callback_of_another_job_is_refused() {
    let h = Harness::start().await;
    let schema = schema(&h, CALLBACK).await;
    let a = h
        .run(CALLBACK, &Harness::input(&schema, "job a sim:duration=50"))
        .await;
    assert_eq!(a["outcome"], "succeeded", "{a:#}");
    let a_job = a["provider_job_id"].as_str().unwrap().to_string();
    let (_, body) = h
        .client
        .create(
            CALLBACK,
            &Harness::input(&schema, "job b sim:duration=1500"),
            &Default::default(),
        )
        .await
        .unwrap();
    let b = body["id"].as_str().unwrap().to_string();
    let b_job = wait_for_job(&h, &b).await;

    let (prediction, headers) = genuine_replicate_webhook(&h, &a_job).await;
    assert_eq!(prediction["status"], "succeeded");
    let (status, problem) =
        post_callback(&h, &b, &serde_json::to_vec(&prediction).unwrap(), &headers).await;
    assert_eq!(status, 401, "{problem:#}");

    let b_final = h.wait(&b).await;
    assert_eq!(b_final["outcome"], "succeeded", "{b_final:#}");
    assert_eq!(b_final["provider_job_id"], b_job.as_str());
    assert_ne!(
        b_final["outputs"], a["outputs"],
        "B was completed with A's output"
    );
    let rejected = b_final["callbacks_rejected"].as_array().unwrap();
    assert!(
        rejected
            .iter()
            .any(|r| r["reason"].as_str().unwrap_or("").contains(&a_job)),
        "{b_final:#}"
    );
}

/// A callback that arrives before the job id is committed is stored, and checked when it is
/// consumed: one about another job never decides the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_callback_stored_before_the_job_id_is_refused_when_consumed() {
    // A submit timeout of 1.5 s (30 s scaled): B's create is held 500 ms, then waits for
    // its job under `Prefer: wait`.
    let h = Harness::start_with(|o| o.lifecycle.time_scale = 0.05).await;
    let schema = schema(&h, CALLBACK).await;
    let a = h
        .run(
            CALLBACK,
            &Harness::input(&schema, "early a sim:duration=50"),
        )
        .await;
    let a_job = a["provider_job_id"].as_str().unwrap().to_string();
    // B's create answers only after 500 ms: its job id is not committed meanwhile.
    let (_, body) = h
        .client
        .create(
            CALLBACK,
            &Harness::input(
                &schema,
                "early b sim:hang_after_create=800 sim:duration=300",
            ),
            &Default::default(),
        )
        .await
        .unwrap();
    let b = body["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = h.client.get(&b).await.unwrap();
    assert!(before["provider_job_id"].is_null(), "{before:#}");
    let (prediction, headers) = genuine_replicate_webhook(&h, &a_job).await;
    let (status, _) =
        post_callback(&h, &b, &serde_json::to_vec(&prediction).unwrap(), &headers).await;
    assert_eq!(status, 200, "stored until the job id is known");

    let b_final = h.wait(&b).await;
    assert_eq!(b_final["outcome"], "succeeded", "{b_final:#}");
    assert_ne!(b_final["provider_job_id"], a_job.as_str());
    assert_ne!(
        b_final["outputs"], a["outputs"],
        "B was completed with A's output"
    );
    assert!(
        b_final["callbacks_rejected"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["reason"].as_str().unwrap_or("").contains(&a_job)),
        "{b_final:#}"
    );
}

/// A verified body that is not a job payload is answered 400 and stores nothing. Before: it
/// was stored and scheduled a poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_body_that_is_not_a_job_payload_is_400() {
    let h = Harness::start().await;
    let schema = schema(&h, CALLBACK).await;
    let (_, body) = h
        .client
        .create(
            CALLBACK,
            &Harness::input(&schema, "ping sim:duration=1000 sim:lose_callback"),
            &Default::default(),
        )
        .await
        .unwrap();
    let id = body["id"].as_str().unwrap().to_string();
    wait_for_job(&h, &id).await;
    let ping = br#"{"test": true}"#;
    let (status, problem) = post_callback(&h, &id, ping, &sign_replicate(&h, ping)).await;
    assert_eq!(status, 400, "{problem:#}");
    let v = h.client.get(&id).await.unwrap();
    assert!(
        v["callbacks_received"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{v:#}"
    );
}

/// A polling job that finished within the last poll interval before the deadline is
/// delivered: at the deadline one final poll is made and the provider's answer decides.
/// Before: it ended `timed_out` without asking, discarding a paid result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_finished_before_the_deadline_is_delivered() {
    // Runway's first poll is 2 s after the create (time scale 1): past a 1 s deadline.
    let h = Harness::start_with(|o| o.lifecycle.time_scale = 1.0).await;
    let schema = schema(&h, POLLING).await;
    let (_, body) = h
        .client
        .create(
            POLLING,
            &Harness::input(&schema, "quick sim:duration=200"),
            &executor_cli::client::CreateOptions {
                max_duration_seconds: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v = h.wait(body["id"].as_str().unwrap()).await;
    assert_eq!(v["outcome"], "succeeded", "{v:#}");
    assert!(!v["outputs"].as_array().unwrap().is_empty());
}

/// A queue whose first `fail` submit sends fail (the acceptance's first message lost).
struct FailingSends {
    inner: Arc<dyn Queue>,
    fail: Arc<AtomicU32>,
    /// Every message of this execution is refused (its outbox can never be applied).
    poisoned: Option<Arc<Mutex<Option<String>>>>,
}

#[async_trait]
impl Queue for FailingSends {
    async fn send(&self, queue: QueueName, body: &str, delay_ms: u64) -> Result<(), StoreError> {
        if let Some(p) = &self.poisoned {
            // The first execution that sends a message while armed is the poisoned one (its
            // request is kept in its guard: no blob names it first).
            let mut poisoned = p.lock();
            if poisoned.as_deref() == Some("pending")
                && let Ok(m) = serde_json::from_str::<executor_lifecycle::model::Message>(body)
            {
                *poisoned = Some(m.execution_id);
            }
        }
        if let Some(p) = &self.poisoned
            && p.lock().as_deref().is_some_and(|id| body.contains(id))
        {
            return Err(StoreError::Unavailable(
                "injected: every message of this execution refused".into(),
            ));
        }
        if queue == QueueName::Submit
            && self
                .fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(StoreError::Unavailable(
                "injected: queue refused the send".into(),
            ));
        }
        self.inner.send(queue, body, delay_ms).await
    }
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility_ms: u64,
    ) -> Result<Vec<executor_lifecycle::Delivery>, StoreError> {
        self.inner.receive(queue, max, visibility_ms).await
    }
    async fn ack(&self, queue: QueueName, receipt: &str) -> Result<(), StoreError> {
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

/// Once the guard is committed the execution is accepted: a send that fails right after is
/// answered 202 (the reconciler re-drives it), never 5xx — a client without an
/// Idempotency-Key would retry and run a second execution. Before: 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_execution_is_never_reported_failed() {
    let h = Harness::start_with(|o| {
        o.wrap_queue = Some(Arc::new(|inner| {
            Arc::new(FailingSends {
                inner,
                fail: Arc::new(AtomicU32::new(1)),
                poisoned: None,
            }) as Arc<dyn Queue>
        }));
    })
    .await;
    let schema = schema(&h, POLLING).await;
    let (status, body) = h
        .client
        .create(
            POLLING,
            &Harness::input(&schema, "lost first message"),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(status, 202, "{body:#}");
    let v = h.wait(body["id"].as_str().unwrap()).await;
    assert_eq!(v["outcome"], "succeeded", "{v:#}");
    let listed = h.client.ids_with_status("succeeded").await.unwrap();
    assert_eq!(listed.len(), 1, "exactly one execution ran: {listed:?}");
}

/// A blob store that names the poisoned execution (the first whose request it stores while
/// armed) and refuses its transition records.
struct PoisonedBlobs {
    inner: Arc<dyn executor_lifecycle::BlobStore>,
    poisoned: Arc<Mutex<Option<String>>>,
}

#[async_trait]
impl executor_lifecycle::BlobStore for PoisonedBlobs {
    async fn put_once(
        &self,
        key: &str,
        bytes: Vec<u8>,
    ) -> Result<executor_lifecycle::PutOutcome, StoreError> {
        {
            // The first execution whose request blob is written while armed is the poisoned
            // one (a large request; a small one is named by its first message instead).
            let mut poisoned = self.poisoned.lock();
            if poisoned.as_deref() == Some("pending")
                && let Some(id) = key
                    .strip_prefix("executions/")
                    .and_then(|k| k.strip_suffix("/request"))
            {
                *poisoned = Some(id.to_string());
            }
            if let Some(id) = poisoned.as_deref()
                && key.contains(id)
                && key.contains("transitions")
            {
                return Err(StoreError::Unavailable(format!("injected: {key} refused")));
            }
        }
        self.inner.put_once(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }
}

/// One execution whose outbox cannot be applied does not stop the reconciler: the pass
/// reports it with its reason and goes on, and the others finish. Before: the pass aborted
/// on the first error (oldest first), so every execution behind it stayed stranded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_execution_does_not_stop_the_reconciler() {
    let poisoned = Arc::new(Mutex::new(None::<String>));
    let fail_sends = Arc::new(AtomicU32::new(0));
    let (p, f) = (Arc::clone(&poisoned), Arc::clone(&fail_sends));
    let pq = Arc::clone(&poisoned);
    let h = Harness::start_with(move |o| {
        o.reconcile_every_ms = 0;
        o.wrap_blobs = Some(Arc::new(move |inner| {
            Arc::new(PoisonedBlobs {
                inner,
                poisoned: Arc::clone(&p),
            }) as Arc<dyn executor_lifecycle::BlobStore>
        }));
        o.wrap_queue = Some(Arc::new(move |inner| {
            Arc::new(FailingSends {
                inner,
                fail: Arc::clone(&f),
                poisoned: Some(Arc::clone(&pq)),
            }) as Arc<dyn Queue>
        }));
    })
    .await;
    let schema = schema(&h, POLLING).await;
    // The bad one, oldest: every transition record of it is refused, so its outbox can never
    // be applied. Its id is known only once accepted: poison it by its prompt's execution,
    // which the blob store sees first as the request key.
    *poisoned.lock() = Some("pending".into());
    let (status, bad) = h
        .client
        .create(
            POLLING,
            &Harness::input(&schema, "the bad one"),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(status, 202, "{bad:#}");
    let bad = bad["id"].as_str().unwrap().to_string();
    // The good one: its first message is lost; only the reconciler can start it.
    fail_sends.store(1, Ordering::SeqCst);
    let (status, good) = h
        .client
        .create(
            POLLING,
            &Harness::input(&schema, "the good one"),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(status, 202, "{good:#}");
    let good = good["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1_200)).await; // past the reconcile grace

    let report = h.sys.engine.reconcile().await.unwrap();
    assert!(report.execution_ids.contains(&good), "{report:?}");
    let failed: Vec<_> = report
        .failed
        .iter()
        .map(|f| f.execution_id.as_str())
        .collect();
    assert_eq!(failed, vec![bad.as_str()], "{report:?}");
    assert!(report.failed[0].reason.contains("refused"), "{report:?}");
    let v = h.wait(&good).await;
    assert_eq!(v["outcome"], "succeeded", "{v:#}");
    // Tried again with a growing backoff, and reported parked after failing 5 times in a row.
    let (mut skipped, mut parked) = (0, None);
    for _ in 0..100 {
        let r = h.sys.engine.reconcile().await.unwrap();
        skipped += r.backing_off.len();
        if let Some(f) = r.failed.iter().find(|f| f.parked) {
            parked = Some(f.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let parked = parked.expect("parked after repeated failures");
    assert_eq!(parked.execution_id, bad);
    assert_eq!(
        parked.failures,
        executor_lifecycle::engine::RECONCILE_PARK_AFTER
    );
    assert!(
        skipped > 0,
        "no pass skipped the failing execution while backing off"
    );
}

/// A system on `dir` that refuses the transition records and the messages of the execution
/// named in `poisoned`, with no reconciler of its own (the test runs the passes).
async fn poisoned_system(
    dir: &std::path::Path,
    poisoned: &Arc<Mutex<Option<String>>>,
) -> (
    executor_cli::local::LocalSystem,
    executor_cli::client::Client,
) {
    let mut o = executor_tests::fast_options(dir);
    o.reconcile_every_ms = 0;
    let p = Arc::clone(poisoned);
    o.wrap_blobs = Some(Arc::new(move |inner| {
        Arc::new(PoisonedBlobs {
            inner,
            poisoned: Arc::clone(&p),
        }) as Arc<dyn executor_lifecycle::BlobStore>
    }));
    // The transition records are in the guard until the end: what its outbox holds that
    // can be refused is the execution's messages.
    let pq = Arc::clone(poisoned);
    o.wrap_queue = Some(Arc::new(move |inner| {
        Arc::new(FailingSends {
            inner,
            fail: Arc::new(AtomicU32::new(0)),
            poisoned: Some(Arc::clone(&pq)),
        }) as Arc<dyn Queue>
    }));
    let sys = executor_cli::local::LocalSystem::start(o).await.unwrap();
    let client = executor_cli::client::Client::new(&sys.url, &sys.dev_key).unwrap();
    (sys, client)
}

/// Runs reconcile passes until one reports a try of `id` (failed or re-driven), at most 5 s.
async fn pass_that_tries(
    engine: &executor_lifecycle::Engine,
    id: &str,
) -> executor_lifecycle::engine::ReconcileReport {
    for _ in 0..200 {
        let r = engine.reconcile().await.unwrap();
        if r.failed.iter().any(|f| f.execution_id == id) || r.execution_ids.iter().any(|x| x == id)
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no reconcile pass tried {id}");
}

/// A parked execution is a pile of `GET /v1/failures` (`executor failures`), and its count,
/// backoff and parking are durable: a restarted process goes on from the sixth failure and
/// still shows it parked; once it reconciles fine the record is removed and the pile is
/// gone. Before: the count lived in the engine's memory (a restart started from zero, a
/// one-shot `executor reconcile` never parked anything) and no pile showed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_execution_is_a_pile_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let poisoned = Arc::new(Mutex::new(None::<String>));
    let (sys, client) = poisoned_system(dir.path(), &poisoned).await;
    let models = client.models().await.unwrap();
    let schema = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == POLLING)
        .unwrap()["input_schema"]
        .clone();
    *poisoned.lock() = Some("pending".into());
    let (status, body) = client
        .create(
            POLLING,
            &Harness::input(&schema, "parked"),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(status, 202, "{body:#}");
    let id = body["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1_200)).await; // past the reconcile grace
    let mut last = None;
    for n in 1..=executor_lifecycle::engine::RECONCILE_PARK_AFTER {
        let r = pass_that_tries(&sys.engine, &id).await;
        let f = r
            .failed
            .iter()
            .find(|f| f.execution_id == id)
            .unwrap()
            .clone();
        assert_eq!(f.failures, n, "{r:?}");
        last = Some(f);
    }
    assert!(last.unwrap().parked);
    let piles = client.failures("1h", None, None).await.unwrap();
    assert_eq!(piles["parked"], 1, "{piles:#}");
    let pile = &piles["parked_piles"][0];
    assert_eq!(pile["example_execution_id"], id.as_str(), "{piles:#}");
    assert_eq!(pile["status"], "queued");
    assert_eq!(pile["failures"], 5);
    assert!(
        pile["reason"].as_str().unwrap().contains("refused"),
        "{piles:#}"
    );
    let text = executor_cli::render::failures(&piles, false);
    assert!(text.contains("1 parked by the reconciler"), "{text}");
    assert!(text.contains(&id), "{text}");
    sys.stop().await;

    // Another process on the same data: still parked, and the count goes on.
    let (sys, client) = poisoned_system(dir.path(), &poisoned).await;
    let piles = client.failures("1h", None, None).await.unwrap();
    assert_eq!(piles["parked"], 1, "after a restart: {piles:#}");
    let r = pass_that_tries(&sys.engine, &id).await;
    let f = r.failed.iter().find(|f| f.execution_id == id).unwrap();
    assert_eq!(f.failures, 6, "{r:?}");
    assert!(f.parked);

    // The store takes its records again: the next try re-drives it, the record is removed.
    *poisoned.lock() = None;
    let r = pass_that_tries(&sys.engine, &id).await;
    assert!(r.execution_ids.contains(&id), "{r:?}");
    assert_eq!(r.recovered, vec![id.clone()], "{r:?}");
    let v = client
        .wait_final(&id, Duration::from_secs(30), |_| {})
        .await
        .unwrap();
    assert_eq!(v["outcome"], "succeeded", "{v:#}");
    let g = executor_lifecycle::GuardStore::get(sys.store.as_ref(), &id)
        .await
        .unwrap()
        .unwrap();
    assert!(g.reconcile_failures.is_none(), "{:?}", g.reconcile_failures);
    let piles = client.failures("1h", None, None).await.unwrap();
    assert_eq!(piles["parked"], 0, "{piles:#}");
    assert!(piles["parked_piles"].as_array().unwrap().is_empty());
    sys.stop().await;
}

/// A guard store that holds back the commit recording a created job (`submitted`) by
/// `delay_ms`: the create's answer arrives, but its commit comes late.
struct LateJobCommits {
    inner: Arc<dyn executor_lifecycle::GuardStore>,
    delay_ms: u64,
    /// The commits held back: those into this status (`submitted`: the created job's).
    status: executor_lifecycle::Status,
}

#[async_trait]
impl executor_lifecycle::GuardStore for LateJobCommits {
    async fn insert(
        &self,
        guard: &executor_lifecycle::Guard,
        idempotency: Option<&executor_lifecycle::IdempotencyItem>,
    ) -> Result<executor_lifecycle::Inserted, StoreError> {
        self.inner.insert(guard, idempotency).await
    }
    async fn get(&self, id: &str) -> Result<Option<executor_lifecycle::Guard>, StoreError> {
        self.inner.get(id).await
    }
    async fn insert_idempotency(
        &self,
        item: &executor_lifecycle::IdempotencyItem,
    ) -> Result<executor_lifecycle::Inserted, StoreError> {
        self.inner.insert_idempotency(item).await
    }
    async fn find_idempotency(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<executor_lifecycle::IdempotencyItem>, StoreError> {
        self.inner.find_idempotency(tenant, key).await
    }
    async fn commit(
        &self,
        expected: u64,
        next: &executor_lifecycle::Guard,
    ) -> Result<(), executor_lifecycle::CommitError> {
        if next.status() == self.status && next.hot.poll_count == 0 {
            tokio::time::sleep(Duration::from_millis(self.delay_ms)).await;
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
    async fn clear_outbox_of(&self, cleared: &executor_lifecycle::Guard) -> Result<(), StoreError> {
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
    async fn overdue(
        &self,
        due_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<executor_lifecycle::Guard>, StoreError> {
        self.inner.overdue(due_before_ms, limit).await
    }
    async fn list(
        &self,
        query: &executor_lifecycle::ListQuery,
    ) -> Result<Vec<executor_lifecycle::Guard>, StoreError> {
        self.inner.list(query).await
    }
}

/// A job id that comes back after the watchdog already failed the submit as ambiguous is
/// not dropped: the job is canceled at the provider through the bundle's cancel steps and
/// recorded on the execution (timeline `late_jobs`, shown by explain). Before: the losing
/// commit was dropped and the job ran on, paid and unseen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_id_arriving_after_the_ambiguous_verdict_is_recorded_and_canceled() {
    // Submit timeout 600 ms (30 s scaled), watchdog 50 ms after it (the intent's due time:
    // the reconciler, passing every 50 ms without grace, is the watchdog); the commit of the
    // created job is held 1.5 s.
    let h = Harness::start_with(|o| {
        o.lifecycle.watchdog_margin_ms = 50;
        o.lifecycle.reconcile_grace_ms = 0;
        o.reconcile_every_ms = 50;
        o.wrap_guards = Some(Arc::new(|inner| {
            Arc::new(LateJobCommits {
                inner,
                delay_ms: 1_500,
                status: executor_lifecycle::Status::Submitted,
            }) as Arc<dyn executor_lifecycle::GuardStore>
        }));
    })
    .await;
    let schema = schema(&h, POLLING).await;
    let v = h
        .run(
            POLLING,
            &Harness::input(&schema, "late answer sim:duration=20000"),
        )
        .await;
    assert_eq!(v["outcome"], "failed", "{v:#}");
    assert_eq!(v["error"]["class"], "submit_ambiguous", "{v:#}");
    let id = v["id"].as_str().unwrap();
    let mut late = Value::Null;
    for _ in 0..100 {
        let events = h.client.events(id).await.unwrap();
        if events["late_jobs"].is_array() {
            late = events;
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let jobs = late["late_jobs"]
        .as_array()
        .expect("the late job is recorded");
    assert_eq!(jobs.len(), 1, "{late:#}");
    assert_eq!(jobs[0]["provider_cancel"], "accepted", "{late:#}");
    let stats = h.sys.simulators.as_ref().unwrap().stats();
    assert_eq!(
        stats.provider("runway").cancels,
        1,
        "canceled at the provider"
    );
    let text = executor_cli::render::explain(&h.client.get(id).await.unwrap(), &late, false);
    assert!(text.contains("late provider job"), "{text}");
}

/// Where the provider lets us find the job (Luma echoes each generation's callback URL, which
/// holds the execution id), an ambiguous create ends in the job found, not in a failure: the
/// connection dropped after Luma created the job, or a gateway answered 502, and the execution
/// still succeeds with that one job. Before: `submit_ambiguous`, the job paid and abandoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_create_is_resolved_by_looking_the_job_up() {
    let h = Harness::start().await;
    let model = "luma/ray-2";
    let schema = schema(&h, model).await;
    for fault in ["sim:drop_after_create", "sim:error_after_create=502"] {
        let prompt = format!("a lighthouse {fault} sim:duration=200");
        let v = h.run(model, &Harness::input(&schema, &prompt)).await;
        assert_eq!(v["outcome"], "succeeded", "{fault}: {v:#}");
        assert_eq!(h.creates("luma", &prompt), 1, "{fault}: one job");
        let records = h.transitions(v["id"].as_str().unwrap()).await;
        let created = records
            .iter()
            .find(|r| r.event == executor_lifecycle::Event::JobCreated)
            .unwrap();
        assert_eq!(created.detail["lookup"]["lookup"], "found", "{created:?}");
        assert_eq!(created.detail["lookup"]["job_id"], v["provider_job_id"]);
    }
}

/// Known, not fixed here (docs/chaos.md, "What the long run found"): executions waiting for a
/// provider's capacity each commit a `capacity_wait` and send a submit message every backoff
/// (at most 16 × 1 s scaled, plus jitter), on the submit queue every provider shares. With
/// thousands waiting, those commits fill the submit workers and another provider's submits
/// queue behind them. Measured on this 2-core machine (shared with other builds): 20 fal
/// executions took 1.3 s beside 500 waiting runway executions and 21.8 s beside 2,500. The
/// fix belongs to submit (a longer capacity backoff, a wait that needs no commit, or a
/// submit queue per provider), which is being reworked elsewhere; ignored until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "known: capacity waits of one provider slow the others' submits (docs/chaos.md)"]
async fn a_provider_at_capacity_does_not_hold_up_the_others() {
    let h = Harness::start_with(|o| {
        o.capacity_overrides.insert("runway".into(), 1);
        o.worker_concurrency = 16;
    })
    .await;
    let runway = schema(&h, POLLING).await;
    let fal = schema(&h, "fal-ai/flux-dev").await;
    h.client
        .create(
            POLLING,
            &Harness::input(&runway, "holds the slot sim:duration=120000"),
            &Default::default(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..2_500 {
        h.client
            .create(
                POLLING,
                &Harness::input(&runway, &format!("waits {i}")),
                &Default::default(),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    for i in 0..20 {
        let (_, body) = h
            .client
            .create(
                "fal-ai/flux-dev",
                &Harness::input(&fal, &format!("fal {i}")),
                &Default::default(),
            )
            .await
            .unwrap();
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        h.wait(id).await;
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "20 fal executions took {took:?} beside 2,500 runway executions waiting for capacity"
    );
}

/// Known, not fixed here (docs/chaos.md): a create whose answer was lost may have created a
/// job, and that job occupies one of the provider's slots for as long as it runs; but the
/// execution, failed `submit_ambiguous` (the bundles' policy), releases its lease at once,
/// so the next execution takes the slot while the orphan still runs: the provider runs more
/// jobs than the capacity. The chaos suites measured it (fal: 9 jobs at once on a capacity of
/// 8, 5 of them the executions' own). A fix keeps the lease of an ambiguous create until its
/// job may have ended (a bound the bundle declares, at most the deadline), in submit and
/// finalize, which are being reworked elsewhere; ignored until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "known: an ambiguous create's orphan job runs outside the capacity (docs/chaos.md)"]
async fn an_ambiguous_create_keeps_its_capacity_until_its_job_may_have_ended() {
    let h = Harness::start_with(|o| {
        o.capacity_overrides.insert("fal".into(), 1);
    })
    .await;
    let fal = schema(&h, "fal-ai/flux-dev").await;
    let (_, a) = h
        .client
        .create(
            "fal-ai/flux-dev",
            &Harness::input(&fal, "orphan sim:drop_after_create sim:duration=4000"),
            &Default::default(),
        )
        .await
        .unwrap();
    let a = h.wait(a["id"].as_str().unwrap()).await;
    assert_eq!(a["error"]["class"], "submit_ambiguous", "{a:#}");
    let (_, b) = h
        .client
        .create(
            "fal-ai/flux-dev",
            &Harness::input(&fal, "next"),
            &Default::default(),
        )
        .await
        .unwrap();
    let b = h.wait(b["id"].as_str().unwrap()).await;
    assert_eq!(b["outcome"], "succeeded", "{b:#}");
    let stats = h.sys.simulators.as_ref().unwrap().stats();
    assert!(
        stats.provider("fal").max_inflight <= 1,
        "fal ran {} jobs at once on a capacity of 1",
        stats.provider("fal").max_inflight
    );
}

/// Two copies of one submit message (a duplicate, a redelivery after a lost ack) handled at
/// once take the same lease (its id is the version's, so a crash between the acquire and the
/// intent commit does not leak a second slot); the copy whose intent commit loses to the other
/// must not release it: it is the winner's, held for the job the winner creates. Before: the
/// loser released it, the job ran without a lease, and the next execution took the slot —
/// found by the chaos suite's concurrency invariant (runway: 20 of the executions' own jobs at
/// once on a capacity of 12, seed 20261202).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_submit_that_loses_the_intent_does_not_free_the_winners_lease() {
    let h = Harness::start_with(|o| {
        o.capacity_overrides.insert("runway".into(), 1);
        o.wrap_queue = Some(Arc::new(|inner| {
            Arc::new(executor_tests::DuplicatingQueue(inner)) as Arc<dyn Queue>
        }));
        // Both copies acquire before either commits its intent.
        o.wrap_guards = Some(Arc::new(|inner| {
            Arc::new(LateJobCommits {
                inner,
                delay_ms: 300,
                status: executor_lifecycle::Status::Submitting,
            }) as Arc<dyn executor_lifecycle::GuardStore>
        }));
    })
    .await;
    let schema = schema(&h, POLLING).await;
    let (_, a) = h
        .client
        .create(
            POLLING,
            &Harness::input(&schema, "first sim:duration=3000"),
            &Default::default(),
        )
        .await
        .unwrap();
    let a = a["id"].as_str().unwrap().to_string();
    for _ in 0..100 {
        if h.client.get(&a).await.unwrap()["provider_job_id"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Past the other copy's intent commit (held back 300 ms like the winner's).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = executor_lifecycle::InflightLimiter::inflight(h.sys.limiter.as_ref(), "runway")
        .await
        .unwrap();
    assert_eq!(held, 1, "the running job's lease is not held");
    let (_, b) = h
        .client
        .create(
            POLLING,
            &Harness::input(&schema, "second"),
            &Default::default(),
        )
        .await
        .unwrap();
    for id in [a, b["id"].as_str().unwrap().to_string()] {
        let v = h.wait(&id).await;
        assert_eq!(v["outcome"], "succeeded", "{v:#}");
    }
    let stats = h.sys.simulators.as_ref().unwrap().stats();
    assert_eq!(
        stats.provider("runway").max_inflight,
        1,
        "runway ran two jobs at once on a capacity of 1"
    );
}
