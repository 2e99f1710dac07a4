//! Stats endpoint, concurrency cap and the oneshot router (no server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use executor_simulators::{SimConfig, SimState, Simulators, router};
use serde_json::{Value, json};
use tower::ServiceExt;

#[tokio::test]
async fn concurrency_cap_rejects_and_stats_are_served() {
    let config = SimConfig {
        job_duration_ms: 150,
        max_concurrent_jobs: Some(2),
        ..SimConfig::default()
    };
    let sim = Simulators::start(config).await.unwrap();
    let url = format!("{}/v1/models/o/m/predictions", sim.base_url("replicate"));
    let mut statuses = Vec::new();
    for i in 0..3 {
        let resp = common::client()
            .post(&url)
            .header("authorization", "Bearer t")
            .json(&json!({"input": {"prompt": format!("job {i}")}}))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, vec![201, 201, 429]);
    let stats: Value = reqwest::get(format!("http://{}/_sim/stats", sim.addr()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = &stats["providers"]["replicate"];
    assert_eq!(
        (
            r["creates"].as_u64(),
            r["create_rejections"].as_u64(),
            r["inflight"].as_u64()
        ),
        (Some(2), Some(1), Some(2))
    );
    assert_eq!(r["max_inflight"], 2);
    assert_eq!(r["creates_by_prompt"]["job 0"], 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sim.stats().provider("replicate").inflight, 0);
    assert_eq!(sim.stats().provider("replicate").max_inflight, 2);
}

#[tokio::test]
async fn router_answers_oneshot_requests() {
    let state = SimState::new(SimConfig::default(), "http://sim.test").unwrap();
    let app = router(state);
    let request = Request::post("/fal/fal-ai/flux/dev")
        .header("authorization", "Key k")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"prompt": "oneshot"}"#))
        .unwrap();
    let resp = app.clone().oneshot(request).await.unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        body["status_url"]
            .as_str()
            .unwrap()
            .starts_with("http://sim.test/fal/fal-ai/flux/requests/")
    );
    let jwks = app
        .oneshot(
            Request::get("/fal/.well-known/jwks.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
}

#[tokio::test]
async fn random_rates_are_reproducible_and_hang_delays() {
    async fn pattern(seed: u64) -> Vec<u16> {
        let config = SimConfig {
            rate_limit_rate: 0.5,
            seed,
            ..SimConfig::default()
        };
        let sim = Simulators::start(config).await.unwrap();
        let mut out = Vec::new();
        for _ in 0..12 {
            let resp = common::client()
                .post(format!("{}/v1/chat/completions", sim.base_url("openai")))
                .header("authorization", "Bearer k")
                .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap();
            out.push(resp.status().as_u16());
        }
        out
    }
    let a = pattern(7).await;
    assert_eq!(a, pattern(7).await);
    assert!(a.contains(&429) && a.contains(&200));

    let sim = common::sim().await;
    let slow = common::client()
        .post(format!("{}/v1/chat/completions", sim.base_url("openai")))
        .header("authorization", "Bearer k")
        .timeout(Duration::from_millis(100))
        .json(
            &json!({"model": "m", "messages": [{"role": "user", "content": "zzz sim:hang=1000"}]}),
        )
        .send()
        .await;
    assert!(slow.unwrap_err().is_timeout());
}

#[tokio::test]
async fn immediate_providers_count_requests_in_flight() {
    let config = SimConfig {
        max_concurrent_jobs: Some(1),
        ..SimConfig::default()
    };
    let sim = Simulators::start(config).await.unwrap();
    let url = format!("{}/v1/text-to-speech/voice1", sim.base_url("elevenlabs"));
    let speak = |text: &'static str| {
        common::client()
            .post(&url)
            .header("xi-api-key", "k")
            .json(&json!({ "text": text }))
            .send()
    };
    let slow = tokio::spawn(speak("slow sim:duration=300"));
    common::eventually(|| sim.stats().provider("elevenlabs").inflight == 1).await;
    let refused = speak("second").await.unwrap();
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["detail"]["code"], "concurrent_limit_exceeded");
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status(), 200);
    assert_eq!(slow.headers()["maximum-concurrent-requests"], "1");
    let stats = sim.stats().provider("elevenlabs");
    assert_eq!(
        (
            stats.creates,
            stats.create_rejections,
            stats.inflight,
            stats.max_inflight
        ),
        (1, 1, 0, 1)
    );
}
