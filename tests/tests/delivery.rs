//! Outcome delivery to a customer endpoint: one that fails twice then succeeds gets exactly
//! one accepted delivery with a valid Standard Webhooks signature; one that always fails
//! leaves the execution's delivery `degraded` (its status the outcome; visible in the failure
//! piles), and a redrive delivers it later.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::CreateOptions;
use executor_tests::Harness;
use executor_tests::customer::endpoint;
use serde_json::Value;
use std::time::Duration;

async fn create(h: &Harness, url: &str, prompt: &str) -> String {
    let (model, schema) = h.model_of_shape("immediate").await;
    let (status, body) = h
        .client
        .create(
            &model,
            &Harness::input(&schema, prompt),
            &CreateOptions {
                webhook_url: Some(url.to_string()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(status < 300, "{body}");
    body["id"].as_str().unwrap().to_string()
}

fn events_of(timeline: &Value) -> Vec<String> {
    timeline["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_twice_gets_exactly_one_accepted_signed_delivery() {
    let h = Harness::start().await;
    let secret = executor_cli::local::LocalOptions::dev(".".into()).webhook_secret;
    let (ep, url) = endpoint(&secret, 2).await;
    let id = create(&h, &url, "deliver me").await;
    let v = h.wait(&id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["delivery"]["state"], "delivered", "{v}");
    assert_eq!(v["delivery"]["attempts"], 3, "{v}");
    let seen = ep.seen.lock().clone();
    assert_eq!(seen.len(), 3, "two failures then one success: {seen:?}");
    assert!(
        seen.iter().all(|(_, valid, _)| *valid),
        "every attempt signed"
    );
    assert!(
        seen.iter().all(|(wid, _, _)| *wid == format!("evt_{id}")),
        "one event id"
    );
    let accepted = ep.accepted.lock().clone();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["execution_id"], id.as_str());
    assert_eq!(accepted[0]["status"], "succeeded");
    // The payload's status is the API's.
    assert_eq!(accepted[0]["status"], v["status"]);
    let events = events_of(&h.client.events(&id).await.unwrap());
    assert_eq!(
        events.iter().filter(|e| *e == "delivery_retry").count(),
        2,
        "{events:?}"
    );
    assert_eq!(events.last().unwrap(), "delivered");
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_always_fails_degrades_and_redrive_delivers_later() {
    let h = Harness::start().await;
    let secret = executor_cli::local::LocalOptions::dev(".".into()).webhook_secret;
    let (ep, url) = endpoint(&secret, u32::MAX).await;
    let id = create(&h, &url, "park me").await;
    let v = h.wait(&id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["delivery"]["state"], "degraded", "{v}");
    assert_eq!(
        v["delivery"]["error"]["class"], "degraded_finalization",
        "{v}"
    );
    assert_eq!(v["outcome"], "succeeded");
    assert_eq!(v["delivery_error"]["class"], "degraded_finalization", "{v}");
    let attempts = ep.seen.lock().len();
    assert!(attempts >= 2, "retried before parking: {attempts}");
    assert!(ep.accepted.lock().is_empty());
    // Visible in the failure piles.
    let piles = h.client.failures("1h", None, None).await.unwrap();
    assert_eq!(
        piles["data"][0]["error_class"], "degraded_finalization",
        "{piles}"
    );
    assert_eq!(piles["data"][0]["example_execution_id"], id.as_str());

    // Still failing: the redrive says so and changes nothing.
    let (status, problem) = h.client.redrive(&id).await.unwrap();
    assert_eq!(status, 502, "{problem}");
    assert_eq!(problem["error_class"], "degraded_finalization");
    assert_eq!(
        h.client.get(&id).await.unwrap()["delivery"]["state"],
        "degraded"
    );

    // The endpoint is fixed: redrive delivers, once.
    *ep.fail_next.lock() = 0;
    let (status, after) = h.client.redrive(&id).await.unwrap();
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["status"], "succeeded");
    assert_eq!(after["delivery"]["state"], "delivered");
    assert!(after.get("delivery_error").is_none(), "{after}");
    let accepted = ep.accepted.lock().clone();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["id"], format!("evt_{id}"));
    let (status, problem) = h.client.redrive(&id).await.unwrap();
    assert_eq!(status, 409, "{problem}");
    let events = events_of(&h.client.events(&id).await.unwrap());
    assert!(
        events.contains(&"delivery_failed".to_string()),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap(), "redelivered");
    // No longer in the piles.
    let piles = h.client.failures("1h", None, None).await.unwrap();
    assert_eq!(piles["failed"], 0, "{piles}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    h.sys.stop().await;
}
