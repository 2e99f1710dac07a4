//! Provider callbacks through the drivers: a real Replicate webhook (Standard Webhooks,
//! captured from the simulator) verifies, is deduplicated by `webhook-id` and is trusted as
//! the job's state; a tampered body, a stale timestamp or a wrong secret is refused. fal's
//! Ed25519 signatures verify against the configured public key only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{context, driver, now_ms, receiver, setup};
use executor_lifecycle::{CallbackVerdict, ErrorClass, PollOutcome, SubmitOutcome};
use serde_json::json;

#[tokio::test]
async fn replicate_webhooks_verify_and_are_trusted_as_the_job_state() {
    let (_sims, catalog) = setup().await;
    let mut hooks = receiver(200).await;
    let d = driver(&catalog, "black-forest-labs/flux-schnell");
    let ctx = context(d.as_ref(), json!({"prompt": "a red fox"}), &hooks.url);
    let SubmitOutcome::Created { job_id, .. } = d.submit(&ctx).await.outcome else {
        panic!("not created");
    };
    // `start` then `completed` (the bundle's webhook_events_filter).
    let mut completed = None;
    for _ in 0..2 {
        let hook = hooks.next(10).await;
        let verified = d
            .verify_callback(&hook.headers, &hook.body, now_ms())
            .unwrap();
        assert_eq!(
            Some(verified.callback_id.as_str()),
            hook.header("webhook-id")
        );
        assert_eq!(verified.payload["id"], json!(job_id));
        if verified.payload["status"] == "succeeded" {
            completed = Some((hook, verified));
        }
    }
    let (hook, verified) = completed.expect("a completed webhook");
    match d.interpret_callback(&ctx, &verified.payload) {
        CallbackVerdict::Outcome(PollOutcome::Succeeded(r)) => assert!(!r.outputs.is_empty()),
        other => panic!("{other:?}"),
    }

    // Tampered body.
    let mut tampered = hook.body.clone();
    let at = tampered.iter().position(|b| *b == b'{').unwrap() + 1;
    tampered.insert(at, b' ');
    let f = d
        .verify_callback(&hook.headers, &tampered, now_ms())
        .unwrap_err();
    assert_eq!(f.class, ErrorClass::CallbackFailure, "{f:?}");

    // Replayed six minutes later (outside the five-minute tolerance).
    let f = d
        .verify_callback(&hook.headers, &hook.body, now_ms() + 6 * 60 * 1000)
        .unwrap_err();
    assert_eq!(f.class, ErrorClass::CallbackFailure);
    assert!(f.message.contains("timestamp"), "{f:?}");

    // Missing signature header.
    let unsigned: Vec<_> = hook
        .headers
        .iter()
        .filter(|(k, _)| k != "webhook-signature")
        .cloned()
        .collect();
    assert!(d.verify_callback(&unsigned, &hook.body, now_ms()).is_err());
}

#[tokio::test]
async fn replicate_webhooks_signed_with_another_secret_are_refused() {
    let (_sims, catalog) = setup().await;
    let d = driver(&catalog, "black-forest-labs/flux-schnell");
    let body = br#"{"id":"p1","status":"succeeded","output":["https://replicate.delivery/x.png"]}"#;
    let ts = now_ms() / 1000;
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let sig = executor_bundles::standard_webhooks::sign(other, "msg_1", ts, body).unwrap();
    let headers = vec![
        ("webhook-id".to_string(), "msg_1".to_string()),
        ("webhook-timestamp".to_string(), ts.to_string()),
        ("webhook-signature".to_string(), sig),
    ];
    let f = d.verify_callback(&headers, body, now_ms()).unwrap_err();
    assert_eq!(f.class, ErrorClass::CallbackFailure, "{f:?}");
}

#[tokio::test]
async fn fal_webhooks_verify_with_the_configured_ed25519_key() {
    let (sims, catalog) = setup().await;
    let d = driver(&catalog, "fal-ai/flux-dev");
    let body = serde_json::to_vec(&json!({
        "request_id": "req-1", "gateway_request_id": "req-1", "status": "OK",
        "payload": {"images": [{"url": "https://v3.fal.media/files/x.png", "width": 1024, "height": 768, "content_type": "image/png"}], "seed": 196619188014358660u64}
    }))
    .unwrap();
    let ts = (now_ms() / 1000) as u64;
    let sig = sims.state().fal_signer.sign("req-1", "sim-user", ts, &body);
    let headers = |sig: &str, ts: u64| {
        vec![
            ("X-Fal-Webhook-Request-Id".to_string(), "req-1".to_string()),
            ("X-Fal-Webhook-User-Id".to_string(), "sim-user".to_string()),
            ("X-Fal-Webhook-Timestamp".to_string(), ts.to_string()),
            ("X-Fal-Webhook-Signature".to_string(), sig.to_string()),
        ]
    };
    let v = d
        .verify_callback(&headers(&sig, ts), &body, now_ms())
        .unwrap();
    assert_eq!(v.payload["payload"]["seed"], json!(196619188014358660u64));
    match d.interpret_callback(&context(d.as_ref(), json!({"prompt": "x"}), ""), &v.payload) {
        CallbackVerdict::Outcome(PollOutcome::Succeeded(r)) => {
            assert_eq!(r.outputs.len(), 1);
            assert_eq!(r.outputs[0].width, Some(1024));
        }
        other => panic!("{other:?}"),
    }
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert!(
        d.verify_callback(&headers(&sig, ts), &tampered, now_ms())
            .is_err()
    );
    assert!(
        d.verify_callback(&headers(&sig, ts - 600), &body, now_ms())
            .is_err()
    );
}
