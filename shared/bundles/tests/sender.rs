//! Outbound customer webhooks: the outcome event is POSTed with Standard Webhooks headers that
//! verify with the same secret (the event id as `webhook-id`); a non-2xx answer or an
//! unreachable endpoint is a `degraded_finalization` failure carrying the status. Internal
//! addresses are never reached (loopback only with the development policy).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{now_ms, receiver};
use executor_bundles::{StandardWebhookSender, standard_webhooks};
use executor_lifecycle::netguard::OutboundPolicy;
use executor_lifecycle::{Cost, ErrorClass, OutcomeEvent, Status, WebhookSender};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn event() -> OutcomeEvent {
    OutcomeEvent {
        id: "evt_ex_01".into(),
        kind: "execution.succeeded".into(),
        execution_id: "ex_01".into(),
        tenant: "t".into(),
        model: "openai/gpt-image-1".into(),
        provider: "openai".into(),
        status: Status::Succeeded,
        outputs: vec![],
        error: None,
        cost: Cost::default(),
        usage: serde_json::Value::Null,
        created_at_ms: 1,
        completed_at_ms: 2,
    }
}

#[tokio::test]
async fn delivery_is_signed_and_verifies() {
    let mut hooks = receiver(204).await;
    let sender = StandardWebhookSender::with_policy(SECRET, OutboundPolicy::dev()).unwrap();
    sender.deliver(&hooks.url, &event()).await.unwrap();
    let got = hooks.next(5).await;
    assert_eq!(got.header("webhook-id"), Some("evt_ex_01"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    let id = standard_webhooks::verify(SECRET, &got.headers, &got.body, now_ms() / 1000).unwrap();
    assert_eq!(id, "evt_ex_01");
    let body: OutcomeEvent = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body, event());
}

#[tokio::test]
async fn refusals_and_unreachable_endpoints_are_degraded_finalization() {
    let hooks = receiver(500).await;
    let sender = StandardWebhookSender::with_policy(SECRET, OutboundPolicy::dev()).unwrap();
    let f = sender.deliver(&hooks.url, &event()).await.unwrap_err();
    assert_eq!(f.class, ErrorClass::DegradedFinalization);
    assert_eq!(f.http_status, Some(500));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = sender
        .deliver(&format!("http://127.0.0.1:{closed}/hook"), &event())
        .await
        .unwrap_err();
    assert_eq!(f.class, ErrorClass::DegradedFinalization);
}

#[test]
fn a_malformed_secret_is_refused_at_construction() {
    assert!(StandardWebhookSender::new("whsec_***not base64***").is_err());
}

#[tokio::test]
async fn internal_addresses_are_never_reached() {
    let mut hooks = receiver(204).await;
    let strict = StandardWebhookSender::new(SECRET).unwrap();
    // A literal loopback address, a loopback name, the metadata address, a private address.
    let port = hooks.url.rsplit(':').next().unwrap().to_string();
    for (url, why) in [
        (hooks.url.clone(), "loopback"),
        (format!("http://localhost:{port}"), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "link-local",
        ),
        ("http://10.0.0.5/hook".to_string(), "private"),
        ("http://[::ffff:127.0.0.1]:80/".to_string(), "loopback"),
    ] {
        let f = strict.deliver(&url, &event()).await.unwrap_err();
        assert_eq!(f.class, ErrorClass::DegradedFinalization, "{url}");
        assert!(
            f.message.contains("refused") && f.message.contains(why),
            "{url}: {f}"
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        hooks.rx.try_recv().is_err(),
        "a refused delivery reached the endpoint"
    );
    // The development policy reaches the same endpoint, by name too (resolved, then allowed).
    let dev = StandardWebhookSender::with_policy(SECRET, OutboundPolicy::dev()).unwrap();
    dev.deliver(&format!("http://localhost:{port}"), &event())
        .await
        .unwrap();
    assert_eq!(hooks.next(5).await.header("webhook-id"), Some("evt_ex_01"));
}
