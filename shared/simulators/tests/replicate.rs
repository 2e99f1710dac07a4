//! Replicate simulator against reqwest: lifecycle, `Prefer: wait`, faults and signed webhooks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{assert_png, client, eventually, next_hook, poll_until, receiver, sim};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const TOKEN: &str = "Bearer r8_test";

#[tokio::test]
async fn create_poll_succeeded_with_real_fields() {
    let sim = sim().await;
    let base = sim.base_url("replicate");
    let resp = client()
        .post(format!(
            "{base}/v1/models/black-forest-labs/flux-schnell/predictions"
        ))
        .header("authorization", TOKEN)
        .json(&json!({"input": {"prompt": "a llama in the snow"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["ratelimit-remaining"], "599");
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["status"], "starting");
    assert_eq!(created["model"], "black-forest-labs/flux-schnell");
    assert_eq!(created["source"], "api");
    assert_eq!(created["data_removed"], false);
    assert!(created["output"].is_null() && created["completed_at"].is_null());
    assert!(
        created.get("metrics").is_none(),
        "no metrics before terminal"
    );
    let get = created["urls"]["get"].as_str().unwrap().to_owned();
    assert!(
        created["urls"]["cancel"]
            .as_str()
            .unwrap()
            .ends_with("/cancel")
    );

    let seen = poll_until(
        || client().get(&get).header("authorization", TOKEN),
        |p| p["status"] == "succeeded",
    )
    .await;
    let done = seen.last().unwrap();
    assert!(done["metrics"]["predict_time"].as_f64().unwrap() > 0.0);
    assert!(done["completed_at"].is_string() && done["started_at"].is_string());
    let url = done["output"][0].as_str().unwrap();
    assert!(url.starts_with(&format!("{base}/files/")));
    assert_png(url).await;
    let stats = sim.stats().provider("replicate");
    assert_eq!(stats.creates, 1);
    assert!(stats.polls >= 1);
    assert_eq!(
        sim.stats()
            .creates_for_prompt("replicate", "a llama in the snow"),
        1
    );
}

#[tokio::test]
async fn prefer_wait_returns_terminal_prediction() {
    let sim = sim().await;
    let hex = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa";
    let resp = client()
        .post(format!("{}/v1/predictions", sim.base_url("replicate")))
        .header("authorization", TOKEN)
        .header("prefer", "wait=5")
        .json(&json!({"version": format!("stability-ai/sdxl:{hex}"), "input": {"prompt": "fast"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["preference-applied"], "wait=5");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["status"], "succeeded");
    assert_eq!(p["version"], hex);
}

#[tokio::test]
async fn rate_limit_once_then_success_and_errors_are_problems() {
    let sim = sim().await;
    let url = format!("{}/v1/models/o/m/predictions", sim.base_url("replicate"));
    let body = json!({"input": {"prompt": "busy sim:rate_limit=1"}});
    let first = client()
        .post(&url)
        .header("authorization", TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 429);
    assert_eq!(first.headers()["retry-after"], "1");
    assert_eq!(first.headers()["content-type"], "application/problem+json");
    let problem: Value = first.json().await.unwrap();
    assert_eq!(
        problem["detail"],
        "Request was throttled. Your rate limit resets in ~1s."
    );
    let second = client()
        .post(&url)
        .header("authorization", TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 201);

    let unauth = client().post(&url).json(&body).send().await.unwrap();
    assert_eq!(unauth.status(), 401);
    let p: Value = unauth.json().await.unwrap();
    assert_eq!(p["title"], "Unauthenticated");
    let bad_version = client()
        .post(format!("{}/v1/predictions", sim.base_url("replicate")))
        .header("authorization", TOKEN)
        .json(&json!({"version": "nope", "input": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_version.status(), 422);

    let stats = sim.stats().provider("replicate");
    assert_eq!((stats.creates, stats.create_rejections), (1, 3));
}

#[tokio::test]
async fn failure_cancel_and_poll_errors() {
    let sim = sim().await;
    let base = sim.base_url("replicate");
    let create = |prompt: &str| {
        client()
            .post(format!("{base}/v1/models/o/m/predictions"))
            .header("authorization", TOKEN)
            .json(&json!({"input": {"prompt": prompt}}))
            .send()
    };
    let failed: Value = create("x sim:fail sim:poll_error=2")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let get = failed["urls"]["get"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let r = client()
            .get(&get)
            .header("authorization", TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
    }
    let seen = poll_until(
        || client().get(&get).header("authorization", TOKEN),
        |p| p["status"] != "starting" && p["status"] != "processing",
    )
    .await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "failed");
    assert!(last["error"].as_str().unwrap().contains("unknown reason"));

    let slow: Value = create("slow sim:duration=5000")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cancel = slow["urls"]["cancel"].as_str().unwrap();
    let canceled: Value = client()
        .post(cancel)
        .header("authorization", TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(canceled["status"], "canceled");
    assert!(canceled["metrics"]["total_time"].is_number());
    assert_eq!(sim.stats().provider("replicate").cancels, 1);
}

fn verify_standard_webhook(secret: &str, hook: &common::Hook) {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let id = hook.header("webhook-id");
    let ts = hook.header("webhook-timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&hook.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let sigs = hook.header("webhook-signature");
    assert!(
        sigs.split(' ').any(|s| s == expected),
        "bad signature {sigs}"
    );
    assert!(id.starts_with("msg_"));
}

#[tokio::test]
async fn webhooks_are_signed_filtered_and_retried() {
    let sim = sim().await;
    let secret: Value = client()
        .get(format!(
            "{}/v1/webhooks/default/secret",
            sim.base_url("replicate")
        ))
        .header("authorization", TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(secret["key"], sim.replicate_webhook_secret());
    // The receiver fails the first attempt: the retry must reuse the webhook-id.
    let (hook_url, mut rx) = receiver(1).await;
    let resp = client()
        .post(format!(
            "{}/v1/models/o/m/predictions",
            sim.base_url("replicate")
        ))
        .header("authorization", TOKEN)
        .json(&json!({"input": {"prompt": "hooked"}, "webhook": hook_url,
                      "webhook_events_filter": ["start", "completed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let start = next_hook(&mut rx).await;
    let start_retry = next_hook(&mut rx).await;
    verify_standard_webhook(sim.replicate_webhook_secret(), &start);
    verify_standard_webhook(sim.replicate_webhook_secret(), &start_retry);
    assert_eq!(start.header("webhook-id"), start_retry.header("webhook-id"));
    assert_eq!(start.json()["status"], "starting");
    let completed = next_hook(&mut rx).await;
    verify_standard_webhook(sim.replicate_webhook_secret(), &completed);
    assert_ne!(completed.header("webhook-id"), start.header("webhook-id"));
    assert_eq!(completed.json()["status"], "succeeded");
    eventually(|| {
        let s = sim.stats().provider("replicate");
        (s.webhooks_sent, s.webhooks_delivered, s.webhooks_failed) == (3, 2, 1)
    })
    .await;
}

#[tokio::test]
async fn duplicate_callback_repeats_the_same_id() {
    let sim = sim().await;
    let (hook_url, mut rx) = receiver(0).await;
    client()
        .post(format!(
            "{}/v1/models/o/m/predictions",
            sim.base_url("replicate")
        ))
        .header("authorization", TOKEN)
        .json(&json!({"input": {"prompt": "twice sim:duplicate_callback"}, "webhook": hook_url}))
        .send()
        .await
        .unwrap();
    // No `webhook_events_filter`: the API default sends `output` (the prediction as its
    // output appears, still `processing`) and then `completed`; each twice, same id.
    let mut hooks = Vec::new();
    for _ in 0..4 {
        let h = next_hook(&mut rx).await;
        verify_standard_webhook(sim.replicate_webhook_secret(), &h);
        hooks.push((h.header("webhook-id"), h.json()));
    }
    let status_of = |id: &str| {
        let same: Vec<_> = hooks.iter().filter(|(i, _)| i == id).collect();
        assert_eq!(same.len(), 2, "each event twice with the same id");
        same[0].1["status"].as_str().unwrap().to_owned()
    };
    let mut statuses: Vec<String> = hooks.iter().map(|(id, _)| status_of(id)).collect();
    statuses.sort();
    statuses.dedup();
    assert_eq!(statuses, ["processing", "succeeded"]);
    let output_event = hooks
        .iter()
        .find(|(_, b)| b["status"] == "processing")
        .unwrap();
    assert!(output_event.1["output"].is_array(), "{}", output_event.1);
}
