//! fal simulator against reqwest: queue lifecycle, the COMPLETED-with-error trap, cancel and
//! Ed25519-signed webhooks verified with the published JWKS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{assert_png, client, next_hook, poll_until, receiver, sim};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const KEY: &str = "Key fal_test:secret";

async fn submit(base: &str, query: &str, input: Value) -> reqwest::Response {
    client()
        .post(format!("{base}/fal-ai/flux/dev{query}"))
        .header("authorization", KEY)
        .json(&input)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn queue_lifecycle_with_real_fields() {
    let sim = sim().await;
    let base = sim.base_url("fal");
    let resp = submit(
        &base,
        "",
        json!({"prompt": "a fox", "image_size": "square_hd", "num_images": 2}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let sub: Value = resp.json().await.unwrap();
    assert_eq!(sub["status"], "IN_QUEUE");
    let id = sub["request_id"].as_str().unwrap();
    assert_eq!(
        sub["status_url"],
        format!("{base}/fal-ai/flux/requests/{id}/status")
    );
    let status_url = sub["status_url"].as_str().unwrap();
    let seen = poll_until(
        || client().get(status_url).header("authorization", KEY),
        |s| s["status"] == "COMPLETED",
    )
    .await;
    let done = seen.last().unwrap();
    assert!(done.get("error").is_none());
    assert!(done["metrics"]["inference_time"].is_number());
    let result: Value = client()
        .get(sub["response_url"].as_str().unwrap())
        .header("authorization", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(result["images"].as_array().unwrap().len(), 2);
    assert_eq!(result["seed"].as_u64().unwrap(), 196_619_188_014_358_660);
    assert_eq!(result["images"][0]["content_type"], "image/png");
    assert_png(result["images"][0]["url"].as_str().unwrap()).await;
    let stats = sim.stats().provider("fal");
    assert_eq!((stats.creates, stats.result_fetches), (1, 1));
}

#[tokio::test]
async fn completed_can_carry_an_error_and_cancel_works() {
    let sim = sim().await;
    let base = sim.base_url("fal");
    let sub: Value = submit(&base, "", json!({"prompt": "boom sim:fail"}))
        .await
        .json()
        .await
        .unwrap();
    let status_url = sub["status_url"].as_str().unwrap();
    let seen = poll_until(
        || client().get(status_url).header("authorization", KEY),
        |s| s["status"] == "COMPLETED",
    )
    .await;
    assert_eq!(seen.last().unwrap()["error_type"], "runner_disconnected");
    let result = client()
        .get(sub["response_url"].as_str().unwrap())
        .header("authorization", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(result.status(), 503);
    assert_eq!(result.headers()["x-fal-error-type"], "runner_disconnected");

    let slow: Value = submit(&base, "", json!({"prompt": "slow sim:duration=5000"}))
        .await
        .json()
        .await
        .unwrap();
    let cancel = client()
        .put(slow["cancel_url"].as_str().unwrap())
        .header("authorization", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 202);
    let after: Value = client()
        .get(slow["status_url"].as_str().unwrap())
        .header("authorization", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (after["status"].as_str(), after["error_type"].as_str()),
        (Some("COMPLETED"), Some("client_cancelled"))
    );
    let missing = client()
        .post(format!("{base}/fal-ai/flux/dev"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
}

/// `sim:null_error`: a successful COMPLETED that spells its absent error as `"error": null,
/// "error_type": null` (fal's official Python client reads both as optional, `Completed.error:
/// str | None`; fal's older webhook docs sent `"error": null`). Still a success: the result is
/// there to fetch.
#[tokio::test]
async fn completed_may_spell_no_error_as_null() {
    let sim = sim().await;
    let base = sim.base_url("fal");
    let sub: Value = submit(&base, "", json!({"prompt": "a fox sim:null_error"}))
        .await
        .json()
        .await
        .unwrap();
    let status_url = sub["status_url"].as_str().unwrap();
    let seen = poll_until(
        || client().get(status_url).header("authorization", KEY),
        |s| s["status"] == "COMPLETED",
    )
    .await;
    let done = seen.last().unwrap();
    assert_eq!(done.get("error"), Some(&Value::Null), "{done}");
    assert_eq!(done.get("error_type"), Some(&Value::Null), "{done}");
    let result = client()
        .get(sub["response_url"].as_str().unwrap())
        .header("authorization", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(result.status(), 200);
    let result: Value = result.json().await.unwrap();
    assert_eq!(result["images"].as_array().unwrap().len(), 1);

    // A failed job keeps its error whatever the directive says.
    let failed: Value = submit(&base, "", json!({"prompt": "boom sim:fail sim:null_error"}))
        .await
        .json()
        .await
        .unwrap();
    let failed_url = failed["status_url"].as_str().unwrap();
    let seen = poll_until(
        || client().get(failed_url).header("authorization", KEY),
        |s| s["status"] == "COMPLETED",
    )
    .await;
    assert_eq!(seen.last().unwrap()["error_type"], "runner_disconnected");
}

#[tokio::test]
async fn rate_limited_once_then_accepted() {
    let sim = sim().await;
    let base = sim.base_url("fal");
    let input = json!({"prompt": "hot sim:rate_limit=1"});
    let first = submit(&base, "", input.clone()).await;
    assert_eq!(first.status(), 429);
    assert_eq!(first.headers()["retry-after"], "1");
    let body: Value = first.json().await.unwrap();
    assert!(body["detail"].is_string() && body["error_type"].is_string());
    assert_eq!(submit(&base, "", input).await.status(), 200);
    assert_eq!(
        sim.stats()
            .creates_for_prompt("fal", "hot sim:rate_limit=1"),
        1
    );
}

#[tokio::test]
async fn webhook_signature_verifies_with_jwks() {
    let sim = sim().await;
    let base = sim.base_url("fal");
    let jwks: Value = reqwest::get(format!("{base}/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    assert_eq!(x, sim.fal_public_key_b64url());
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    let key =
        VerifyingKey::from_bytes(&URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap()).unwrap();

    let (hook_url, mut rx) = receiver(0).await;
    let sub: Value = submit(
        &base,
        &format!("?fal_webhook={hook_url}"),
        json!({"prompt": "hook me"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let hook = next_hook(&mut rx).await;
    let body = hook.json();
    assert_eq!(body["status"], "OK");
    assert_eq!(body["request_id"], sub["request_id"]);
    assert!(body["payload"]["images"].is_array());
    let request_id = hook.header("x-fal-webhook-request-id");
    let user_id = hook.header("x-fal-webhook-user-id");
    let ts = hook.header("x-fal-webhook-timestamp");
    let message = format!(
        "{request_id}\n{user_id}\n{ts}\n{}",
        hex::encode(Sha256::digest(&hook.body))
    );
    let sig = Signature::from_slice(&hex::decode(hook.header("x-fal-webhook-signature")).unwrap())
        .unwrap();
    key.verify(message.as_bytes(), &sig).unwrap();
}
