//! The chaos suite on the AWS backend, smaller: the Lambda handlers over S3, DynamoDB and SQS
//! on moto server and the Redis limiter, driven by the in-process event source mapping, with
//! the same fault layer over the queue, blob, guard and outcome sink ports, crashes at
//! commit-protocol points and provider faults, one execution whose outcome event the sink
//! refuses until it is parked, and customer webhooks that fail a share of deliveries or are
//! down (then redriven). After the faults stop and the queues drain: every accepted
//! execution is final with one terminal outcome, a gapless history and no outbox pending, the
//! outcome queue holds one event id per execution (SQS may deliver it more than once), no
//! provider job twice unless declared ambiguous, the leases are back to zero, every
//! reconciler pass completed, the providers' concurrency stayed within capacity, what the
//! provider finished before the deadline was delivered, and every customer saw its outcome.
//!
//! `CHAOS_SEED` and `CHAOS_AWS_EXECUTIONS` (default 60) as for tests/tests/chaos.rs. Needs
//! moto server and redis-server (scripts/services.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_bundles::CatalogOptions;
use executor_lambda::App;
use executor_lambda::esm::{self, MappingConfig};
use executor_lifecycle::{GuardStore, LifecycleConfig, QueueName, Status};
use executor_simulators::{SimConfig, Simulators};
use executor_tests::chaos::{
    Chaos, ChaosBlobs, ChaosCrashes, ChaosEvents, ChaosGuards, ChaosQueue, Rates, Receiver,
    ReconcileTally, Refusals,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MODELS: [(&str, &str, &str); 4] = [
    ("openai/gpt-image-1", "openai", "a cat"),
    ("runway/gen4-turbo", "runway", ""),
    ("fal-ai/flux-dev", "fal", ""),
    ("black-forest-labs/flux-schnell", "replicate", ""),
];

/// The fallback of the chained executions (fal's image model falls back on Replicate's).
const CHAIN_FALLBACK: &str = "black-forest-labs/flux-schnell";

const WEBHOOK_SECRET: &str = "whsec_ZGV2LW91dGJvdW5kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM=";
/// Capacity of each limited provider: low, since the suite creates one execution at a time.
const CAPACITY: u32 = 2;

fn input(model: &str, prompt: &str) -> Value {
    if model.starts_with("runway/") {
        json!({"promptImage": "https://example.com/a.png", "promptText": prompt})
    } else {
        json!({"prompt": prompt})
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariants_hold_under_chaos_on_aws() {
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let n: usize = std::env::var("CHAOS_AWS_EXECUTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    println!("chaos (aws backend) seed {seed}, {n} executions");
    let endpoint = std::env::var("EXECUTOR_TEST_AWS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".into());
    // The default limiter of a deployment (leases in the table); EXECUTOR_TEST_LIMITER=redis
    // runs the suite on Redis instead.
    let limiter = match std::env::var("EXECUTOR_TEST_LIMITER").as_deref() {
        Ok("redis") => executor_lambda::local::LimiterChoice::Redis(
            std::env::var("EXECUTOR_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ),
        _ => executor_lambda::local::LimiterChoice::DynamoDb,
    };
    let prefix = format!("chaos-{}", ulid::Ulid::new().to_string().to_lowercase());
    let cfg = executor_lambda::local::ensure_resources(&prefix, &endpoint, limiter)
        .await
        .expect("moto server must run: scripts/services.sh");
    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let mut catalog = CatalogOptions::from_env();
    for p in executor_simulators::Provider::ALL.map(|p| p.as_str()) {
        catalog
            .base_url_overrides
            .insert(p.into(), sims.base_url(p));
    }
    catalog.replicate_webhook_secret = Some(sims.replicate_webhook_secret().to_string());
    catalog.fal_public_keys = vec![sims.fal_public_key_b64url()];
    catalog.allow_missing_credentials = true;
    for p in ["runway", "fal", "replicate"] {
        catalog.capacity_overrides.insert(p.into(), CAPACITY);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let lifecycle = LifecycleConfig {
        public_base_url: url.clone(),
        time_scale: 0.02,
        visibility_timeout_ms: 2_000,
        watchdog_margin_ms: 2_000,
        nudge_retry_ms: 100,
        reconcile_grace_ms: 1_000,
        delivery_retry_base_ms: 100,
        submit_retry_base_ms: 100,
        // The customer endpoints of the suite are on this machine.
        webhook_targets: executor_lifecycle::netguard::OutboundPolicy::dev(),
        budgets: executor_tests::chaos::chaos_budgets("chaos"),
        ..Default::default()
    };
    let chaos = Chaos::new(seed, Rates::default());
    let refusals = Refusals::new();
    let (receiver, hooks) = Receiver::start(chaos.clone(), WEBHOOK_SECRET, 1_500).await;
    let c = chaos.clone();
    let r = refusals.clone();
    let app = Arc::new(
        App::build_wrapped(
            &cfg,
            lifecycle,
            catalog,
            WEBHOOK_SECRET,
            None,
            move |mut p| {
                p.events = Arc::new(ChaosEvents {
                    inner: p.events,
                    chaos: c.clone(),
                    refusals: r.clone(),
                });
                p.webhooks = Arc::new(
                    executor_bundles::StandardWebhookSender::with_timeout(
                        WEBHOOK_SECRET,
                        executor_lifecycle::netguard::OutboundPolicy::dev(),
                        Duration::from_millis(1_000),
                    )
                    .unwrap(),
                );
                p.queue = Arc::new(ChaosQueue {
                    inner: p.queue,
                    chaos: c.clone(),
                });
                p.blobs = Arc::new(ChaosBlobs {
                    inner: p.blobs,
                    chaos: c.clone(),
                });
                p.guards = Arc::new(ChaosGuards {
                    inner: p.guards,
                    chaos: c.clone(),
                });
                p
            },
            Some(Arc::new(ChaosCrashes(chaos.clone()))),
        )
        .await
        .unwrap(),
    );
    let key = format!("exk_chaos_{seed}");
    app.backend
        .guards
        .add_api_key("chaos", &executor_api::hash_api_key(&key))
        .await
        .unwrap();
    let router = app.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let sdk = cfg.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (shutdown, rx) = tokio::sync::watch::channel(false);
    for q in QueueName::ALL {
        let m = MappingConfig {
            queue_url: cfg.queues[&q].url.clone(),
            queue_arn: format!("arn:aws:sqs:us-east-1:000000000000:{prefix}-{}", q.as_str()),
            batch_size: 10,
            visibility_timeout: 2,
            max_concurrency: 4,
        };
        tokio::spawn(esm::run(app.clone(), sqs.clone(), m, rx.clone()));
    }
    // The reconciler schedule, every second; each pass's report (or error) is tallied.
    let rec = app.clone();
    let mut rx2 = rx.clone();
    let tally = Arc::new(parking_lot::Mutex::new(ReconcileTally::default()));
    let t = tally.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = rx2.changed() => break,
            }
            let pass = rec
                .dispatch(json!({"source": "aws.events", "detail-type": "Scheduled Event"}))
                .await
                .and_then(|v| Ok(serde_json::from_value(v)?));
            t.lock().add(&pass);
        }
    });

    // Create: provider faults in half the prompts, retried through 5xx with an idempotency key.
    let mut rng = StdRng::seed_from_u64(seed);
    let http = reqwest::Client::new();
    let mut accepted: Vec<(String, &str, String)> = Vec::new();
    let mut chains = std::collections::BTreeSet::<String>::new();
    let mut webhooks: BTreeMap<String, &str> = BTreeMap::new();
    let hold = (seed as usize) % n.max(1);
    for i in 0..n {
        let (mut model, mut provider, _) = MODELS[rng.random_range(0..MODELS.len())];
        let faults = [
            "",
            "",
            "sim:rate_limit=1",
            "sim:server_error=1",
            "sim:fail",
            "sim:duration=800",
            // The provider made the job, then the network lost the answer.
            "sim:drop_after_create",
            "sim:error_after_create=502",
            "sim:error_after_create=504",
        ];
        let fault = faults[rng.random_range(0..faults.len())];
        let mut prompt = format!("aws chaos {i} {fault}");
        // Finishes shortly before a 1 s deadline: the last look at the deadline delivers it.
        let mut max_duration: Option<u64> = None;
        if i == (hold + n / 2) % n.max(1) {
            (model, provider) = ("fal-ai/flux-dev", "fal");
        }
        if provider != "openai" && (rng.random_bool(0.08) || i == (hold + n / 2) % n.max(1)) {
            prompt = format!("aws chaos {i} sim:duration={}", rng.random_range(300..700));
            max_duration = Some(1);
        }
        let webhook = rng.random_bool(0.15).then(|| {
            if rng.random_bool(0.3) {
                "down"
            } else {
                "flaky"
            }
        });
        if i == hold {
            // Its outcome event is refused until it is parked.
            (model, provider) = ("runway/gen4-turbo", "runway");
            prompt = format!("aws chaos {i} hold sim:duration=1500");
            max_duration = None;
        }
        // A share of fal's executions run as a chain falling back on Replicate, the fault
        // the primary's alone (`sim:only=fal`).
        let mut fallback = None;
        if provider == "fal" && max_duration.is_none() && i != hold && rng.random_bool(0.3) {
            fallback = Some(CHAIN_FALLBACK);
            prompt = format!("aws chaos {i} sim:only=fal {fault}");
        }
        let mut body = json!({"model": model, "input": input(model, &prompt)});
        if let Some(f) = fallback {
            body["fallbacks"] = json!([f]);
        }
        if let Some(mode) = webhook {
            body["webhook_url"] = json!(format!("{hooks}/{mode}/{i}"));
        }
        if let Some(s) = max_duration {
            body["max_duration_seconds"] = json!(s);
        }
        let mut id = None;
        for _ in 0..30 {
            let r = http
                .post(format!("{url}/v1/executions"))
                .bearer_auth(&key)
                .header("idempotency-key", format!("chaos-{seed}-{i}"))
                .json(&body)
                .send()
                .await;
            if let Ok(r) = r {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if status < 300 {
                    id = body["id"].as_str().map(str::to_string);
                    break;
                }
                assert!(status >= 500, "{status} {body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let id = id.expect("a create was never accepted");
        if i == hold {
            refusals.refuse(&id);
        }
        if let Some(mode) = webhook {
            webhooks.insert(id.clone(), mode);
        }
        if fallback.is_some() {
            chains.insert(id.clone());
        }
        accepted.push((id, provider, prompt));
    }
    let held = refusals.ids();

    // Faults for a while, then none: everything must finish. The held outbox is refused until
    // the execution is parked and shown in the failure piles.
    let deadline = Instant::now() + Duration::from_secs(240);
    let faults_until = Instant::now() + Duration::from_secs(5);
    let mut parked_shown = 0u64;
    while !refusals.is_released() || Instant::now() <= faults_until {
        if !refusals.is_released() && held.is_subset(&tally.lock().parked_ids) {
            let piles: Value = http
                .get(format!("{url}/v1/failures?since=1h"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let shown: std::collections::BTreeSet<String> = piles["parked_piles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["example_execution_id"].as_str().unwrap().to_string())
                .collect();
            if held.is_subset(&shown) {
                parked_shown = piles["parked"].as_u64().unwrap();
                refusals.release();
            }
        }
        if Instant::now() > faults_until {
            chaos.stop();
        }
        assert!(
            Instant::now() < deadline,
            "the held outbox of {held:?} was never parked and shown: {:?} (seed {seed})",
            tally.lock().parked_ids
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    chaos.stop();
    for (id, _, _) in &accepted {
        loop {
            let g = app.backend.guards.get(id).await.unwrap().unwrap();
            if g.status().is_final() && (!held.contains(id) || g.outbox.is_empty()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} stuck in {:?}, outbox {:?} (seed {seed})",
                g.status(),
                g.outbox
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The customer endpoints are healthy now: the degraded deliveries are redriven.
    let mut redriven = 0;
    for (id, _, _) in &accepted {
        let g = app.backend.guards.get(id).await.unwrap().unwrap();
        if g.status() == Status::FinalizedDegraded {
            assert!(webhooks.contains_key(id), "{id} degraded without a webhook");
            let r = http
                .post(format!("{url}/v1/executions/{id}/redrive"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "redrive of {id} (seed {seed})");
            redriven += 1;
        }
    }
    let last = app.engine.reconcile().await;
    tally.lock().add(&last);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = shutdown.send(true);

    // The outcome queue: every event, grouped by execution (duplicates allowed, ids not).
    let mut event_ids: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut empty = 0;
    while empty < 3 {
        let got = sqs
            .receive_message()
            .queue_url(&cfg.outcome_queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .unwrap();
        if got.messages().is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        for m in got.messages() {
            let v: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            event_ids
                .entry(v["execution_id"].as_str().unwrap().to_string())
                .or_default()
                .insert(v["id"].as_str().unwrap().to_string());
        }
    }

    let stats = sims.stats();
    // Exactly the accepted executions exist for this tenant: a create retried with its
    // idempotency key never made a second one.
    let mut listed = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = format!("{url}/v1/executions?limit=100");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(&q)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for item in page["data"].as_array().cloned().unwrap_or_default() {
            listed.insert(item["id"].as_str().unwrap_or_default().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let expected: std::collections::BTreeSet<String> =
        accepted.iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(
        listed, expected,
        "executions of the tenant vs accepted (seed {seed})"
    );
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut owned_jobs = std::collections::HashSet::<String>::new();
    let mut finished_in_time = (0u64, 0u64);
    let mut chained = (0u64, 0u64);
    let mut settlements = executor_tests::chaos::Settlements::default();
    for (id, provider, prompt) in &accepted {
        let g = app.backend.guards.get(id).await.unwrap().unwrap();
        settlements.add(&g, seed);
        assert!(g.outbox.is_empty(), "{id}: outbox pending (seed {seed})");
        assert!(g.parked().is_none(), "{id}: still parked (seed {seed})");
        let records = app.engine.transitions(id).await.unwrap();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.version, i as u64, "{id}: gap (seed {seed})");
        }
        assert_eq!(records.last().unwrap().to, g.status(), "{id}");
        // Transitions into an outcome (a delivery retry stays in it and does not count).
        let terminal: Vec<Status> = records
            .iter()
            .filter(|r| !r.from.is_some_and(|f| f.is_terminal()))
            .map(|r| r.to)
            .filter(|s| s.is_terminal() && !s.is_final())
            .collect();
        assert_eq!(terminal.len(), 1, "{id}: {terminal:?} (seed {seed})");
        if webhooks.contains_key(id) {
            assert_eq!(g.status(), Status::Finalized, "{id} (seed {seed})");
            let taken = receiver.taken.lock().get(&format!("evt_{id}")).cloned();
            let taken = taken.unwrap_or_else(|| panic!("{id}: no outcome taken (seed {seed})"));
            assert!(
                taken.iter().all(|s| s == terminal[0].as_str()),
                "{id}: the customer saw {taken:?}, the outcome is {:?} (seed {seed})",
                terminal[0]
            );
        }
        // What the provider finished before the deadline is delivered (no cancels here).
        if let (Some(job_id), Some(p)) = (
            g.hot.job_id.as_deref(),
            executor_simulators::Provider::parse(provider),
        ) && let Some(job) = sims.state().jobs.get(p, job_id)
            && let executor_simulators::jobs::Phase::Done(_) = job.phase(Instant::now())
        {
            let finished_ms = (job.created_wall + job.duration)
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            if finished_ms < g.deadline_ms {
                finished_in_time.0 += 1;
                finished_in_time.1 += u64::from(g.deadline_ms - g.created_at_ms <= 1_000);
                assert!(
                    !matches!(terminal[0], Status::TimedOut | Status::Canceled),
                    "{id}: its job finished at {finished_ms} before the deadline {}, yet it ended {:?} (seed {seed}); history: {:?}",
                    g.deadline_ms,
                    terminal[0],
                    records
                        .iter()
                        .map(|r| (
                            r.event.as_str(),
                            r.at_ms,
                            &r.detail,
                            r.calls
                                .iter()
                                .map(|c| (c.step.clone(), c.status, c.error.clone()))
                                .collect::<Vec<_>>()
                        ))
                        .collect::<Vec<_>>()
                );
            }
        }
        owned_jobs.extend(g.hot.job_id.clone());
        owned_jobs.extend(g.hot.attempts.iter().filter_map(|a| a.job_id.clone()));
        *outcomes.entry(terminal[0].as_str()).or_default() += 1;
        let ids = event_ids.get(id).cloned().unwrap_or_default();
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            vec![format!("evt_{id}")],
            "{id}: outcome event ids (seed {seed})"
        );
        let ambiguous = records
            .iter()
            .any(|r| r.event.as_str() == "submit_ambiguous");
        assert!(
            stats.creates_for_prompt(provider, prompt) <= 1 || ambiguous,
            "{id}: duplicate provider job (seed {seed}): {provider} {prompt:?}: {} creates; {:?}",
            stats.creates_for_prompt(provider, prompt),
            records
                .iter()
                .map(|r| (
                    r.event.as_str(),
                    r.calls
                        .iter()
                        .map(|c| (c.step.clone(), c.status, c.error.clone()))
                        .collect::<Vec<_>>()
                ))
                .collect::<Vec<_>>()
        );
        // A chain: one attempt per step at most, the fallback only after a class that falls
        // back, no second job at the fallback's provider either, the outcome the last
        // attempt's.
        if chains.contains(id) {
            chained.0 += 1;
            assert!(
                g.hot.attempts.len() <= 1,
                "{id}: {:?} (seed {seed})",
                g.hot.attempts
            );
            if let Some(first) = g.hot.attempts.first() {
                chained.1 += 1;
                let class = first.error.as_ref().map(|f| f.class);
                assert!(
                    class.is_some_and(
                        |c| executor_lifecycle::fallback::FALLBACK_CLASSES.contains(&c)
                    ),
                    "{id}: fell back after {class:?} (seed {seed})"
                );
                assert_eq!(g.model, CHAIN_FALLBACK, "{id} (seed {seed})");
                assert!(
                    stats.creates_for_prompt("replicate", prompt) <= 1,
                    "{id}: a second Replicate job (seed {seed})"
                );
            }
        } else {
            assert!(
                g.hot.attempts.is_empty(),
                "{id}: attempts without a chain (seed {seed})"
            );
        }
    }
    println!(
        "fallback chains: {} executions, {} fell back to {CHAIN_FALLBACK}",
        chained.0, chained.1
    );
    // Leases return to zero when work drains (this run's own table: the DynamoDB limiter).
    for p in ["runway", "fal", "replicate"] {
        let left = app.backend.limiter.inflight(p).await.unwrap();
        if left > 0 {
            // Name the acquisitions that hold them (`{execution}:{attempt}:v{version}`) and
            // show their executions' histories, so a leak says where it came from.
            let held = match &app.backend.dynamo_limiter {
                Some(l) => l.held(p).await.unwrap(),
                None => Vec::new(),
            };
            let mut histories = Vec::new();
            for (lease, _) in &held {
                let id = lease.split(':').next().unwrap_or("");
                let g = app.backend.guards.get(id).await.unwrap();
                let records = app.engine.transitions(id).await.unwrap_or_default();
                histories.push(format!(
                    "{lease}: {:?} lease {:?}; {:?}",
                    g.as_ref().map(|g| g.status()),
                    g.as_ref().and_then(|g| g.hot.lease.clone()),
                    records
                        .iter()
                        .map(|r| format!("v{} {} {}", r.version, r.event.as_str(), r.action))
                        .collect::<Vec<_>>()
                ));
            }
            panic!(
                "{p}: {left} leases left (seed {seed}):\n{}",
                histories.join("\n")
            );
        }
    }
    // The customer endpoints.
    assert_eq!(
        receiver
            .bad_signatures
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    let expected_taken: std::collections::BTreeSet<String> =
        webhooks.keys().map(|id| format!("evt_{id}")).collect();
    assert_eq!(receiver.taken_ids(), expected_taken, "(seed {seed})");
    // Every reconciler pass completed; the held outbox was parked, shown and recovered.
    let tally = tally.lock().clone();
    assert!(
        tally.pass_errors.is_empty(),
        "reconcile passes failed: {:?} (seed {seed})",
        tally.pass_errors
    );
    assert!(
        held.is_subset(&tally.parked_ids),
        "held {held:?}, parked {:?} (seed {seed})",
        tally.parked_ids,
    );
    // Recovered: final with no outbox pending (checked with every execution above). The
    // reconciler applies the outbox, or the execution's own message does first when it is
    // delivered again (a failed handling is redelivered), so the reconciler's report of a
    // recovery is counted, not required.
    // Provider-side concurrency within capacity, measured at the simulators.
    let mut high_water = Vec::new();
    for p in ["runway", "fal", "replicate"] {
        let sim = executor_simulators::Provider::parse(p).unwrap();
        let all = stats.provider(p).max_inflight;
        let own = sims
            .state()
            .jobs
            .max_concurrent(sim, |j| owned_jobs.contains(&j.id));
        high_water.push(format!("{p} {own} own / {all} all of {CAPACITY}"));
        // Beyond the executions' own jobs, only orphans of ambiguous creates (no lease covers
        // them once the execution failed `submit_ambiguous`; docs/chaos.md).
        let orphans = sims
            .state()
            .jobs
            .max_concurrent(sim, |j| !owned_jobs.contains(&j.id));
        assert!(
            own <= u64::from(CAPACITY) && all <= u64::from(CAPACITY) + orphans,
            "{p}: {all} jobs ({own} the executions' own, at most {orphans} orphans at once) at once on a capacity of {CAPACITY} (seed {seed})"
        );
    }
    println!(
        "chaos (aws backend): seed {seed}, {} executions, outcomes {outcomes:?}",
        accepted.len()
    );
    println!(
        "reconciler: {} passes, {} pass errors, {} per-execution failures ({} executions), {} re-driven or rolled forward, {} passes re-drove others while one failed; held outbox {} (parked {}, shown {parked_shown}, recovered {})",
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
        "customer webhooks: {} executions, {} delivery attempts, {} event ids taken, {} duplicates deduplicated, {redriven} degraded and redriven",
        webhooks.len(),
        receiver.attempts.lock().len(),
        receiver.taken_ids().len(),
        receiver
            .taken
            .lock()
            .values()
            .map(|v| v.len() - 1)
            .sum::<usize>()
    );
    println!(
        "provider concurrency high-water marks: {}",
        high_water.join(", ")
    );
    println!(
        "finished before the deadline, hence not timed_out: {} ({} with a 1 s deadline)",
        finished_in_time.0, finished_in_time.1
    );
    // Budgets: every reservation settled once with its execution's billed cost.
    let spent = settlements.verify(app.backend.guards.as_ref(), seed).await;
    println!(
        "budgets: ${:.6} spent over {} executions, nothing left reserved",
        spent as f64 / 1e6,
        accepted.len()
    );
    println!("| fault injected | count |\n|---|---|");
    for (k, v) in chaos.counts() {
        println!("| {k} | {v} |");
    }
}
