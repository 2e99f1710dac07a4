//! Runway simulator against reqwest: required headers, task lifecycle, failures, cancel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{client, poll_until, sim};
use serde_json::{Value, json};

fn req(method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    client()
        .request(method, url)
        .header("authorization", "Bearer key_test")
        .header("x-runway-version", "2024-11-06")
}

async fn create(base: &str, prompt: &str) -> Value {
    let resp = req(reqwest::Method::POST, format!("{base}/v1/image_to_video"))
        .json(&json!({"model": "gen4_turbo", "promptImage": "https://example.com/a.png", "promptText": prompt, "ratio": "1280:720"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn headers_are_required() {
    let sim = sim().await;
    let url = format!("{}/v1/image_to_video", sim.base_url("runway"));
    let body = json!({"model": "gen4_turbo", "promptImage": "https://example.com/a.png"});
    let no_version = client()
        .post(&url)
        .header("authorization", "Bearer key_test")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);
    assert!(no_version.json::<Value>().await.unwrap()["error"].is_string());
    let no_auth = client()
        .post(&url)
        .header("x-runway-version", "2024-11-06")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), 401);
    let missing_field = req(reqwest::Method::POST, url)
        .json(&json!({"model": "gen4_turbo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing_field.status(), 400);
}

#[tokio::test]
async fn task_runs_to_succeeded() {
    let sim = sim().await;
    let base = sim.base_url("runway");
    let created = create(&base, "a wave sim:duration=200").await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    let url = format!("{base}/v1/tasks/{id}");
    let seen = poll_until(
        || req(reqwest::Method::GET, url.clone()),
        |t| t["status"] == "SUCCEEDED",
    )
    .await;
    assert_eq!(seen[0]["status"], "PENDING");
    assert!(seen[0]["createdAt"].as_str().unwrap().ends_with('Z'));
    let running = seen
        .iter()
        .find(|t| t["status"] == "RUNNING")
        .expect("saw RUNNING");
    assert!(running["progress"].is_f64());
    let done = seen.last().unwrap();
    let video = done["output"][0].as_str().unwrap();
    let resp = reqwest::get(video).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "video/mp4");
    // A real-size MP4 (5 s at ≈ 6 Mbit/s), not a stub.
    let bytes = resp.bytes().await.unwrap();
    assert!(bytes.len() > 3_000_000, "{} bytes", bytes.len());
    assert_eq!(&bytes[4..8], b"ftyp");
}

#[tokio::test]
async fn failures_and_cancel() {
    let sim = sim().await;
    let base = sim.base_url("runway");
    let done = |t: &Value| {
        !matches!(
            t["status"].as_str(),
            Some("PENDING" | "RUNNING" | "THROTTLED")
        )
    };
    for (prompt, code) in [
        ("nsfw sim:content_policy", "SAFETY.INPUT.TEXT"),
        ("bad sim:fail", "INTERNAL.BAD_OUTPUT.CODE01"),
    ] {
        let id = create(&base, prompt).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let seen = poll_until(
            || req(reqwest::Method::GET, format!("{base}/v1/tasks/{id}")),
            done,
        )
        .await;
        let last = seen.last().unwrap();
        assert_eq!(
            (last["status"].as_str(), last["failureCode"].as_str()),
            (Some("FAILED"), Some(code))
        );
        assert!(last["failure"].is_string());
    }
    let id = create(&base, "long sim:duration=5000").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = req(reqwest::Method::DELETE, format!("{base}/v1/tasks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let task: Value = req(reqwest::Method::GET, format!("{base}/v1/tasks/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["status"], "CANCELLED");
    let stats = sim.stats().provider("runway");
    assert_eq!((stats.creates, stats.cancels, stats.inflight), (3, 1, 0));
}
