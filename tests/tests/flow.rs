//! Flow control under load: the per-provider inflight limiter, retries absorbing a provider's
//! 429s, the circuit breaker, the immediate-execution semaphore, and leases returning to zero.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::CreateOptions;
use executor_lifecycle::InflightLimiter;
use executor_simulators::{SimConfig, Simulators};
use executor_tests::Harness;
use serde_json::json;
use std::time::Duration;

const FAL: &str = "fal-ai/flux-dev";

/// Submits `n` fal executions concurrently (bounded) and waits for all to be final.
async fn run_many(h: &Harness, n: usize, tag: &str) -> Vec<serde_json::Value> {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut ids = Vec::new();
    let mut handles = Vec::new();
    for i in 0..n {
        let client = h.client.clone();
        let tag = tag.to_string();
        let permit = sem.clone().acquire_owned().await.unwrap();
        handles.push(tokio::spawn(async move {
            let r = client
                .create(
                    FAL,
                    &json!({"prompt": format!("{tag} {i} sim:duration=30")}),
                    &CreateOptions::default(),
                )
                .await
                .unwrap();
            drop(permit);
            r
        }));
    }
    for hd in handles {
        let (status, body) = hd.await.unwrap();
        assert!(status < 300, "{status} {body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    let mut out = Vec::new();
    for id in ids {
        out.push(
            h.client
                .wait_final(&id, Duration::from_secs(120), |_| {})
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limiter_keeps_500_executions_within_capacity_5() {
    let h = Harness::start_with(|o| {
        o.simulators = Some(SimConfig {
            max_concurrent_jobs: Some(5),
            ..SimConfig::default()
        });
        o.capacity_overrides.insert("fal".into(), 5);
        o.worker_concurrency = 16;
    })
    .await;
    let results = run_many(&h, 500, "limited").await;
    assert!(
        results.iter().all(|v| v["outcome"] == "succeeded"),
        "all finish"
    );
    let stats = h.sys.simulators.as_ref().unwrap().stats().provider("fal");
    assert!(
        stats.max_inflight <= 5,
        "never more than 5 in flight at the provider: {}",
        stats.max_inflight
    );
    assert_eq!(
        stats.create_rejections, 0,
        "the provider never had to refuse"
    );
    assert_eq!(stats.creates, 500, "one job per execution");
    assert_eq!(
        h.sys.limiter.inflight("fal").await.unwrap(),
        0,
        "leases back to zero"
    );
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_limiter_429s_are_absorbed_by_retry() {
    let h = Harness::start_with(|o| {
        o.simulators = Some(SimConfig {
            max_concurrent_jobs: Some(5),
            ..SimConfig::default()
        });
        o.capacity_overrides.insert("fal".into(), 0);
        o.worker_concurrency = 16;
    })
    .await;
    let results = run_many(&h, 150, "unlimited").await;
    let failed: Vec<_> = results
        .iter()
        .filter(|v| v["outcome"] != "succeeded")
        .collect();
    assert!(failed.is_empty(), "nothing fails: {failed:#?}");
    let stats = h.sys.simulators.as_ref().unwrap().stats().provider("fal");
    assert!(
        stats.create_rejections > 0,
        "the provider did refuse (429) and we retried"
    );
    assert_eq!(stats.creates, 150);
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_executions_wait_then_complete() {
    let mut h = Harness::start_with(|o| {
        o.resilience.breaker_consecutive_failures = 3;
        o.resilience.breaker_open_ms = 300;
    })
    .await;
    let sims = h.sys.simulators.take().unwrap();
    let addr = sims.addr();
    drop(sims); // the provider goes down
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let (status, body) = h
            .client
            .create(
                "openai/gpt-image-1",
                &json!({"prompt": format!("down {i}")}),
                &CreateOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(status, 202, "accepted and waiting, not failed: {body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = h.client.get(&ids[9]).await.unwrap();
    assert_eq!(waiting["status"], "queued", "{waiting}");
    let reason = waiting["waiting"]["reason"].as_str().unwrap_or("");
    assert!(
        ["breaker_open", "provider_unavailable"].contains(&reason),
        "{waiting}"
    );
    let records = h.transitions(&ids[9]).await;
    assert!(
        records
            .iter()
            .flat_map(|r| r.calls.iter())
            .any(|c| c.error.as_deref() == Some("circuit open")),
        "the breaker failed calls fast"
    );
    // The provider comes back on the same address; the breaker half-opens and closes.
    let back = Simulators::start_on(addr, SimConfig::default())
        .await
        .unwrap();
    for id in &ids {
        let v = h.wait(id).await;
        assert_eq!(v["outcome"], "succeeded", "{v}");
    }
    drop(back);
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_overflow_goes_async_instead_of_failing() {
    let h = Harness::start_with(|o| o.api.inline_concurrency = 2).await;
    let mut handles = Vec::new();
    for i in 0..20 {
        let client = h.client.clone();
        handles.push(tokio::spawn(async move {
            client
                .create(
                    "openai/gpt-image-1",
                    &json!({"prompt": format!("burst {i} sim:duration=300")}),
                    &CreateOptions::default(),
                )
                .await
                .unwrap()
        }));
    }
    let mut statuses = Vec::new();
    let mut ids = Vec::new();
    for hd in handles {
        let (status, body) = hd.await.unwrap();
        statuses.push(status);
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 202),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&202),
        "some overflowed to async: {statuses:?}"
    );
    assert!(statuses.contains(&201), "some ran inline: {statuses:?}");
    for id in &ids {
        assert_eq!(h.wait(id).await["outcome"], "succeeded");
    }
    h.sys.stop().await;
}
