//! The chaos suite on the AWS backend, smaller: the Lambda handlers over S3, DynamoDB and SQS
//! on moto server and the Redis limiter, driven by the in-process event source mapping, with
//! the same fault layer over the queue, blob and guard ports, crashes at commit-protocol
//! points and provider faults. After the faults stop and the queues drain: every accepted
//! execution is final with one terminal outcome and a gapless history, the outcome queue holds
//! one event id per execution (SQS may deliver it more than once), no provider job twice
//! unless declared ambiguous, and the Redis leases are back to zero.
//!
//! `CHAOS_SEED` and `CHAOS_AWS_EXECUTIONS` (default 60) as for tests/tests/chaos.rs. Needs
//! moto server and redis-server (scripts/services.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_bundles::CatalogOptions;
use executor_lambda::App;
use executor_lambda::esm::{self, MappingConfig};
use executor_lifecycle::{GuardStore, LifecycleConfig, QueueName, Status};
use executor_simulators::{SimConfig, Simulators};
use executor_tests::chaos::{Chaos, ChaosBlobs, ChaosCrashes, ChaosGuards, ChaosQueue, Rates};
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
        catalog.capacity_overrides.insert(p.into(), 6);
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
        ..Default::default()
    };
    let chaos = Chaos::new(seed, Rates::default());
    let c = chaos.clone();
    let app = Arc::new(
        App::build_wrapped(
            &cfg,
            lifecycle,
            catalog,
            "whsec_ZGV2LW91dGJvdW5kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM=",
            None,
            move |mut p| {
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
    // The reconciler schedule, every second.
    let rec = app.clone();
    let mut rx2 = rx.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = rx2.changed() => break,
            }
            let _ = rec
                .dispatch(json!({"source": "aws.events", "detail-type": "Scheduled Event"}))
                .await;
        }
    });

    // Create: provider faults in half the prompts, retried through 5xx with an idempotency key.
    let mut rng = StdRng::seed_from_u64(seed);
    let http = reqwest::Client::new();
    let mut accepted: Vec<(String, &str, String)> = Vec::new();
    for i in 0..n {
        let (model, provider, _) = MODELS[rng.random_range(0..MODELS.len())];
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
        let prompt = format!(
            "aws chaos {i} {}",
            faults[rng.random_range(0..faults.len())]
        );
        let mut id = None;
        for _ in 0..30 {
            let r = http
                .post(format!("{url}/v1/executions"))
                .bearer_auth(&key)
                .header("idempotency-key", format!("chaos-{seed}-{i}"))
                .json(&json!({"model": model, "input": input(model, &prompt)}))
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
        accepted.push((id.expect("a create was never accepted"), provider, prompt));
    }

    // Faults for a while, then none: everything must finish.
    tokio::time::sleep(Duration::from_secs(5)).await;
    chaos.stop();
    let deadline = Instant::now() + Duration::from_secs(180);
    for (id, _, _) in &accepted {
        loop {
            let g = app.backend.guards.get(id).await.unwrap().unwrap();
            if g.status().is_final() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} stuck in {:?} (seed {seed})",
                g.status()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    app.engine.reconcile().await.unwrap();
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
    for (id, provider, prompt) in &accepted {
        let g = app.backend.guards.get(id).await.unwrap().unwrap();
        let records = app.engine.transitions(id).await.unwrap();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.version, i as u64, "{id}: gap (seed {seed})");
        }
        assert_eq!(records.last().unwrap().to, g.status(), "{id}");
        let terminal: Vec<Status> = records
            .iter()
            .map(|r| r.to)
            .filter(|s| s.is_terminal() && !s.is_final())
            .collect();
        assert_eq!(terminal.len(), 1, "{id}: {terminal:?} (seed {seed})");
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
    }
    // Leases return to zero when work drains (this run's own table: the DynamoDB limiter).
    for p in ["runway", "fal", "replicate"] {
        assert_eq!(
            app.backend.limiter.inflight(p).await.unwrap(),
            0,
            "{p} leases left (seed {seed})"
        );
    }
    println!(
        "chaos (aws backend): seed {seed}, {} executions, outcomes {outcomes:?}",
        accepted.len()
    );
    println!("| fault injected | count |\n|---|---|");
    for (k, v) in chaos.counts() {
        println!("| {k} | {v} |");
    }
}
