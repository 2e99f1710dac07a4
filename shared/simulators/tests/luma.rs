//! Luma simulator: generation lifecycle (queued → dreaming → completed / failed), served
//! assets, delete, `{detail}` errors and unsigned callbacks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{client, eventually, next_hook, poll_until, receiver, sim};
use executor_simulators::luma::{FAIL_REASON, MODERATION_REASON};
use serde_json::{Value, json};

const KEY: &str = "Bearer luma-test";

fn req(method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    client().request(method, url).header("authorization", KEY)
}

async fn create(base: &str, body: Value) -> reqwest::Response {
    req(
        reqwest::Method::POST,
        format!("{base}/dream-machine/v1/generations/video"),
    )
    .json(&body)
    .send()
    .await
    .unwrap()
}

async fn created_id(base: &str, prompt: &str) -> String {
    let resp = create(base, json!({"model": "ray-2", "prompt": prompt})).await;
    assert_eq!(resp.status(), 201);
    let g: Value = resp.json().await.unwrap();
    g["id"].as_str().unwrap().to_owned()
}

fn terminal(g: &Value) -> bool {
    matches!(g["state"].as_str(), Some("completed" | "failed"))
}

async fn run(base: &str, id: &str) -> Vec<Value> {
    poll_until(
        || {
            req(
                reqwest::Method::GET,
                format!("{base}/dream-machine/v1/generations/{id}"),
            )
        },
        terminal,
    )
    .await
}

#[tokio::test]
async fn generation_runs_to_completed_with_served_assets() {
    let sim = sim().await;
    let base = sim.base_url("luma");
    let resp = create(
        &base,
        json!({"model": "ray-2", "prompt": "a koi pond sim:duration=200", "aspect_ratio": "9:16",
            "resolution": "720p", "duration": "5s", "loop": null}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let g: Value = resp.json().await.unwrap();
    assert_eq!(g["id"].as_str().unwrap().len(), 36);
    assert_eq!(g["generation_type"], "video");
    assert_eq!(g["state"], "queued");
    assert!(g["failure_reason"].is_null() && g["assets"].is_null());
    assert_eq!(g["model"], "ray-2");
    assert!(g["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(g["request"]["prompt"], "a koi pond sim:duration=200");
    assert_eq!(g["request"]["generation_type"], "video");
    assert!(g["request"].get("loop").is_none(), "nulls are not echoed");

    let seen = run(&base, g["id"].as_str().unwrap()).await;
    assert!(
        seen.iter().any(|g| g["state"] == "dreaming"),
        "saw dreaming"
    );
    let done = seen.last().unwrap();
    assert_eq!(done["state"], "completed");
    let video = done["assets"]["video"].as_str().unwrap();
    let resp = reqwest::get(video).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "video/mp4");
    let bytes = resp.bytes().await.unwrap();
    assert!(bytes.len() > 3_000_000, "{} bytes", bytes.len());
    assert_eq!(&bytes[4..8], b"ftyp");
    // One generation, one output: no thumbnail image next to the video.
    assert!(done["assets"].get("image").is_none(), "{}", done["assets"]);

    // The older create path answers the same object.
    let legacy = req(
        reqwest::Method::POST,
        format!("{base}/dream-machine/v1/generations"),
    )
    .json(&json!({"model": "ray-flash-2", "prompt": "legacy"}))
    .send()
    .await
    .unwrap();
    assert_eq!(legacy.status(), 201);
    let stats = sim.stats().provider("luma");
    assert_eq!(stats.creates, 2);
    assert!(stats.polls >= 2);
}

#[tokio::test]
async fn failures_and_empty_output() {
    let sim = sim().await;
    let base = sim.base_url("luma");
    for (prompt, reason) in [
        ("bad sim:fail", FAIL_REASON),
        ("nsfw sim:content_policy", MODERATION_REASON),
    ] {
        let id = created_id(&base, prompt).await;
        let last = run(&base, &id).await.pop().unwrap();
        assert_eq!(last["state"], "failed");
        assert_eq!(last["failure_reason"], reason);
        assert!(last["assets"].is_null());
    }
    let id = created_id(&base, "nothing sim:empty_output").await;
    let last = run(&base, &id).await.pop().unwrap();
    assert_eq!(last["state"], "completed");
    assert!(last["assets"].get("video").is_none());
    assert!(last["failure_reason"].is_null());
}

#[tokio::test]
async fn errors_are_detail_strings() {
    let sim = sim().await;
    let base = sim.base_url("luma");
    let detail = |v: Value| v["detail"].as_str().unwrap().to_owned();
    let unauth = client()
        .post(format!("{base}/dream-machine/v1/generations/video"))
        .json(&json!({"model": "ray-2", "prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    assert_eq!(
        detail(unauth.json().await.unwrap()),
        "Invalid API key is provided"
    );
    let no_model = create(&base, json!({"prompt": "x"})).await;
    assert_eq!(no_model.status(), 400);
    assert!(detail(no_model.json().await.unwrap()).starts_with("model"));
    let bad_model = create(&base, json!({"model": "ray-9", "prompt": "x"})).await;
    assert_eq!(bad_model.status(), 400);
    let bad_ratio = create(
        &base,
        json!({"model": "ray-2", "prompt": "x", "aspect_ratio": "2:1"}),
    )
    .await;
    assert_eq!(bad_ratio.status(), 400);
    let invalid = create(&base, json!({"model": "ray-2", "prompt": "x sim:invalid"})).await;
    assert_eq!(invalid.status(), 400);

    let busy = json!({"model": "ray-2", "prompt": "busy sim:rate_limit=1"});
    let limited = create(&base, busy.clone()).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(detail(limited.json().await.unwrap()), "Too many requests");
    assert_eq!(create(&base, busy).await.status(), 201);
    let flaky = json!({"model": "ray-2", "prompt": "flaky sim:server_error=1"});
    let failed = create(&base, flaky.clone()).await;
    assert_eq!(failed.status(), 500);
    assert_eq!(
        detail(failed.json().await.unwrap()),
        "Internal server error"
    );
    assert_eq!(create(&base, flaky).await.status(), 201);

    let unknown = req(
        reqwest::Method::GET,
        format!("{base}/dream-machine/v1/generations/00000000-0000-4000-8000-000000000000"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        detail(unknown.json().await.unwrap()),
        "Generation not found"
    );
    let stats = sim.stats().provider("luma");
    assert_eq!((stats.creates, stats.create_rejections), (2, 7));
}

#[tokio::test]
async fn poll_errors_then_delete() {
    let sim = sim().await;
    let base = sim.base_url("luma");
    let id = created_id(&base, "long sim:duration=5000 sim:poll_error=2").await;
    let url = format!("{base}/dream-machine/v1/generations/{id}");
    for _ in 0..2 {
        let r = req(reqwest::Method::GET, url.clone()).send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert!(r.json::<Value>().await.unwrap()["detail"].is_string());
    }
    let r = req(reqwest::Method::GET, url.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sim.stats().provider("luma").inflight, 1);

    let deleted = req(reqwest::Method::DELETE, url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(deleted.bytes().await.unwrap().is_empty());
    let gone = req(reqwest::Method::GET, url.clone()).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    let again = req(reqwest::Method::DELETE, url).send().await.unwrap();
    assert_eq!(again.status(), 404);
    let stats = sim.stats().provider("luma");
    assert_eq!((stats.cancels, stats.inflight, stats.polls), (1, 0, 3));
}

#[tokio::test]
async fn callbacks_are_unsigned_and_fire_on_dreaming_and_completed() {
    let sim = sim().await;
    let base = sim.base_url("luma");
    // The receiver fails the first attempt: the dreaming callback is retried.
    let (hook_url, mut rx) = receiver(1).await;
    let resp = create(
        &base,
        json!({"model": "ray-2", "prompt": "called back sim:duration=300", "callback_url": hook_url}),
    )
    .await;
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = next_hook(&mut rx).await;
    let retry = next_hook(&mut rx).await;
    let done = next_hook(&mut rx).await;
    for hook in [&first, &retry, &done] {
        assert_eq!(hook.json()["id"], id.as_str());
        assert_eq!(hook.header("content-type"), "application/json");
        for signed in ["webhook-signature", "webhook-id", "x-fal-webhook-signature"] {
            assert!(hook.headers.get(signed).is_none(), "{signed} sent");
        }
    }
    assert_eq!(first.json()["state"], "dreaming");
    assert_eq!(retry.body, first.body);
    assert_eq!(done.json()["state"], "completed");
    assert!(done.json()["assets"]["video"].is_string());
    eventually(|| {
        let s = sim.stats().provider("luma");
        (s.webhooks_sent, s.webhooks_delivered, s.webhooks_failed) == (3, 2, 1)
    })
    .await;

    // Failed generations call back too; a lost callback is only counted.
    let (hook_url, mut rx) = receiver(0).await;
    create(
        &base,
        json!({"model": "ray-2", "prompt": "bad sim:fail sim:duration=0", "callback_url": hook_url}),
    )
    .await;
    let failed = next_hook(&mut rx).await;
    assert_eq!(failed.json()["state"], "failed");
    assert_eq!(failed.json()["failure_reason"], FAIL_REASON);
    create(
        &base,
        json!({"model": "ray-2", "prompt": "lost sim:lose_callback", "callback_url": hook_url}),
    )
    .await;
    eventually(|| sim.stats().provider("luma").webhooks_lost == 2).await;
}
