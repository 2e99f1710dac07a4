//! The public status a client can rely on (issue 20, item 1), end to end through the HTTP API
//! on both backends: the embedded one (SQLite, `executor dev`) and the AWS one (the Lambda app
//! over DynamoDB, S3 and SQS on moto server, driven by the in-process event source mapping).
//!
//! - A client polling as fast as it can across the whole lifecycle sees `queued` / `starting` /
//!   `processing`, then the outcome, and never another status after it; finalization shows
//!   as `delivery` (`pending` → `delivered`, attempts counted), never as a status.
//! - A failed execution without a webhook is `failed` with delivery `none`.
//! - A webhook that keeps failing leaves the status alone and the delivery `degraded`; a
//!   redrive makes it `delivered`, the status still the outcome.
//! - List filters take the public statuses and the delivery states; the lifecycle's internal
//!   names are refused with what to use instead.
//!
//! Needs moto server (scripts/services.sh) for the `aws_` tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::{Client, CreateOptions, is_settled};
use executor_tests::Harness;
use executor_tests::customer::endpoint;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const POLLING: &str = "runway/gen4-turbo";
const PUBLIC: [&str; 7] = [
    "queued",
    "starting",
    "processing",
    "succeeded",
    "failed",
    "canceled",
    "timed_out",
];
const OUTCOMES: [&str; 4] = ["succeeded", "failed", "canceled", "timed_out"];

/// A running system under test, whichever backend: its URL, a client with a key of its
/// tenant, and the secret its customer webhooks are signed with.
struct Sys {
    url: String,
    key: String,
    client: Client,
    webhook_secret: String,
    _keep: Box<dyn std::any::Any + Send>,
}

async fn embedded() -> Sys {
    let h = Harness::start_with(|o| o.lifecycle.delivery_max_attempts = 3).await;
    let secret = executor_cli::local::LocalOptions::dev(".".into()).webhook_secret;
    Sys {
        url: h.sys.url.clone(),
        key: h.sys.dev_key.clone(),
        client: Client::new(&h.sys.url, &h.sys.dev_key).unwrap(),
        webhook_secret: secret,
        _keep: Box::new(h),
    }
}

async fn aws() -> Sys {
    let a = executor_tests::aws_sys::start("status", "status", |l| {
        l.delivery_max_attempts = 3;
    })
    .await;
    Sys {
        client: Client::new(&a.url, &a.key).unwrap(),
        url: a.url.clone(),
        key: a.key.clone(),
        webhook_secret: executor_tests::aws_sys::WEBHOOK_SECRET.to_string(),
        _keep: Box::new(a),
    }
}

fn input(prompt: &str) -> Value {
    json!({"promptImage": "https://example.com/a.png", "promptText": prompt})
}

async fn create(sys: &Sys, prompt: &str, webhook_url: Option<&str>) -> Value {
    let (status, body) = sys
        .client
        .create(
            POLLING,
            &input(prompt),
            &CreateOptions {
                webhook_url: webhook_url.map(str::to_string),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(status == 201 || status == 202, "{status} {body}");
    body
}

/// Every view of `id` a client polling as fast as it can sees, from `first` (the create's
/// answer) until the delivery settled (or `until` holds).
async fn poll(sys: &Sys, first: Value, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    let id = first["id"].as_str().unwrap().to_string();
    let mut seen = vec![first];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !until(seen.last().unwrap()) {
        assert!(
            Instant::now() < deadline,
            "{id} did not get there: {}",
            seen.last().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        seen.push(sys.client.get(&id).await.unwrap());
    }
    seen
}

/// The consecutive-distinct values of `f` over `seen`.
fn runs(seen: &[Value], f: impl Fn(&Value) -> String) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in seen {
        let s = f(v);
        if out.last() != Some(&s) {
            out.push(s);
        }
    }
    out
}

/// What a client may rely on, over every view it polled: public statuses only; `outcome` and
/// `delivery` exactly when terminal; once terminal, the status never changes; the delivery
/// goes `pending`* then one settled state that stays; its attempts never go down. Returns the
/// status and delivery sequences.
fn assert_one_outcome(seen: &[Value]) -> (Vec<String>, Vec<String>) {
    let mut outcome: Option<String> = None;
    let mut settled: Option<String> = None;
    let mut attempts = 0;
    for v in seen {
        let status = v["status"].as_str().unwrap_or_else(|| panic!("{v}"));
        assert!(PUBLIC.contains(&status), "not a public status: {v}");
        let terminal = OUTCOMES.contains(&status);
        assert_eq!(v["terminal"], terminal, "{v}");
        if let Some(o) = &outcome {
            assert_eq!(status, o, "the status changed after the outcome: {v}");
        }
        if !terminal {
            assert!(
                v.get("delivery").is_none(),
                "delivery before the outcome: {v}"
            );
            assert!(v.get("outcome").is_none(), "{v}");
            continue;
        }
        outcome = Some(status.to_string());
        assert_eq!(v["outcome"], status, "{v}");
        let d = &v["delivery"];
        let state = d["state"].as_str().unwrap_or_else(|| panic!("{v}"));
        assert!(
            ["pending", "delivered", "degraded", "none"].contains(&state),
            "{v}"
        );
        if let Some(s) = &settled {
            assert_eq!(state, s, "the delivery changed after it settled: {v}");
        }
        if state != "pending" {
            settled = Some(state.to_string());
        }
        let n = d["attempts"].as_u64().unwrap();
        assert!(n >= attempts, "attempts went down: {v}");
        attempts = n;
        assert!(d["updated_at"].is_string(), "{v}");
    }
    (
        runs(seen, |v| v["status"].as_str().unwrap().to_string()),
        runs(seen, |v| {
            v["delivery"]["state"].as_str().unwrap_or("-").to_string()
        }),
    )
}

/// The timeline names the public status (and, from the outcome on, the delivery) after each
/// committed transition, beside the internal ones.
async fn assert_timeline(sys: &Sys, id: &str, outcome: &str, delivery: &str) {
    let timeline = sys.client.events(id).await.unwrap();
    let entries = timeline["data"].as_array().unwrap();
    for e in entries {
        let to = e["to"].as_str().unwrap();
        let expected = match to {
            "queued" => "queued",
            "submitting" | "submitted" => "starting",
            "running" => "processing",
            _ => outcome,
        };
        assert_eq!(e["status"], expected, "{e}");
        let terminal = !["queued", "submitting", "submitted", "running"].contains(&to);
        assert_eq!(e.get("delivery").is_some(), terminal, "{e}");
    }
    assert_eq!(entries.last().unwrap()["delivery"], delivery, "{timeline}");
}

async fn list(sys: &Sys, query: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/executions?{query}", sys.url))
        .bearer_auth(&sys.key)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn listed(sys: &Sys, query: &str) -> Vec<String> {
    let (status, page) = list(sys, query).await;
    assert_eq!(status, 200, "{query}: {page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Scenarios (each run on both backends)
// ---------------------------------------------------------------------------------------------

/// A polling model, and a webhook that fails twice before it accepts: the client polls across
/// the provider run, the outcome and three delivery attempts.
async fn a_polling_client_never_sees_a_terminal_status_change(sys: Sys) {
    let (ep, url) = endpoint(&sys.webhook_secret, 2).await;
    let first = create(&sys, "watched sim:duration=3000", Some(&url)).await;
    let id = first["id"].as_str().unwrap().to_string();
    let seen = poll(&sys, first, is_settled).await;
    let (statuses, deliveries) = assert_one_outcome(&seen);
    assert_eq!(statuses.last().unwrap(), "succeeded", "{statuses:?}");
    assert!(
        ["queued", "starting"].contains(&statuses[0].as_str()),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&"processing".to_string()),
        "the provider ran it: {statuses:?}"
    );
    // Finalization is the delivery, not a status: pending while the webhook is retried.
    assert_eq!(
        deliveries.iter().filter(|d| *d != "-").collect::<Vec<_>>(),
        ["pending", "delivered"],
        "{deliveries:?}"
    );
    let retrying = seen
        .iter()
        .find(|v| v["delivery"]["state"] == "pending" && v["delivery"]["attempts"] == 1);
    if let Some(v) = retrying {
        assert!(v["delivery"]["next_attempt_at"].is_string(), "{v}");
        assert!(v["delivery"]["last_error"].is_string(), "{v}");
    }
    let last = seen.last().unwrap();
    assert_eq!(last["delivery"]["attempts"], 3, "{last}");
    assert!(last["cost"].is_object(), "{last}");
    // The webhook's payload says what the API says.
    let accepted = ep.accepted.lock().clone();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["status"], last["status"]);
    // Later reads: the same status.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sys.client.get(&id).await.unwrap()["status"], "succeeded");
    assert_timeline(&sys, &id, "succeeded", "delivered").await;
}

/// A provider failure without a webhook: `failed`, nothing to deliver (`none`).
async fn a_failure_without_a_webhook_has_nothing_to_deliver(sys: Sys) {
    let first = create(&sys, "sim:fail", None).await;
    let id = first["id"].as_str().unwrap().to_string();
    let seen = poll(&sys, first, is_settled).await;
    let (statuses, deliveries) = assert_one_outcome(&seen);
    assert_eq!(statuses.last().unwrap(), "failed", "{statuses:?}");
    assert_eq!(deliveries.last().unwrap(), "none", "{deliveries:?}");
    let last = seen.last().unwrap();
    assert_eq!(last["delivery"]["attempts"], 0, "{last}");
    assert!(last["error"]["class"].is_string(), "{last}");
    assert_eq!(last["outputs"], json!([]), "{last}");
    assert_timeline(&sys, &id, "failed", "none").await;
    assert!(listed(&sys, "status=failed").await.contains(&id));
    assert!(listed(&sys, "delivery=none").await.contains(&id));
    assert!(
        listed(&sys, "status=failed&delivery=none")
            .await
            .contains(&id)
    );
    assert!(!listed(&sys, "status=succeeded").await.contains(&id));
    assert!(!listed(&sys, "delivery=delivered").await.contains(&id));
}

/// A webhook that always fails: the status stays the outcome, the delivery is `degraded`
/// (listed by `delivery=degraded`); a redrive to the fixed endpoint makes it `delivered`.
async fn a_failing_delivery_degrades_and_the_status_stands(sys: Sys) {
    let (ep, url) = endpoint(&sys.webhook_secret, u32::MAX).await;
    let first = create(&sys, "undeliverable", Some(&url)).await;
    let id = first["id"].as_str().unwrap().to_string();
    let seen = poll(&sys, first, is_settled).await;
    let (statuses, deliveries) = assert_one_outcome(&seen);
    assert_eq!(statuses.last().unwrap(), "succeeded", "{statuses:?}");
    assert_eq!(deliveries.last().unwrap(), "degraded", "{deliveries:?}");
    let last = seen.last().unwrap();
    assert_eq!(
        last["delivery"]["error"]["class"], "degraded_finalization",
        "{last}"
    );
    assert_eq!(last["delivery"]["attempts"], 3, "{last}");
    assert_timeline(&sys, &id, "succeeded", "degraded").await;
    assert_eq!(
        listed(&sys, "delivery=degraded").await,
        std::slice::from_ref(&id)
    );
    assert_eq!(
        listed(&sys, "status=succeeded&delivery=degraded").await,
        std::slice::from_ref(&id)
    );

    // Still failing: nothing changes.
    let (status, _) = sys.client.redrive(&id).await.unwrap();
    assert_eq!(status, 502);
    let v = sys.client.get(&id).await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["delivery"]["state"].as_str()),
        (Some("succeeded"), Some("degraded"))
    );
    // Fixed: delivered, the status still the outcome; a second redrive is refused.
    *ep.fail_next.lock() = 0;
    let (status, after) = sys.client.redrive(&id).await.unwrap();
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["status"], "succeeded", "{after}");
    assert_eq!(after["delivery"]["state"], "delivered", "{after}");
    assert!(after["delivery"].get("error").is_none(), "{after}");
    assert_eq!(ep.accepted.lock()[0]["status"], "succeeded");
    let (status, problem) = sys.client.redrive(&id).await.unwrap();
    assert_eq!(status, 409, "{problem}");
    assert_timeline(&sys, &id, "succeeded", "delivered").await;
    assert!(listed(&sys, "delivery=degraded").await.is_empty());
}

/// A long provider run: `processing` while it runs (listed so), `canceled` once canceled and
/// for good; the old names are refused and say what to use instead.
async fn list_filters_take_public_statuses(sys: Sys) {
    let first = create(&sys, "long sim:duration=60000", None).await;
    let id = first["id"].as_str().unwrap().to_string();
    let mut seen = poll(&sys, first, |v| v["status"] == "processing").await;
    assert!(listed(&sys, "status=processing").await.contains(&id));
    assert!(
        listed(&sys, "status=starting,processing")
            .await
            .contains(&id)
    );
    assert!(!listed(&sys, "status=queued,starting").await.contains(&id));
    assert!(
        !listed(&sys, "status=succeeded,failed,canceled,timed_out")
            .await
            .contains(&id)
    );
    assert!(!listed(&sys, "delivery=pending").await.contains(&id));

    sys.client.cancel(&id).await.unwrap();
    let last = seen.pop().unwrap();
    seen.extend(poll(&sys, last, is_settled).await);
    let (statuses, deliveries) = assert_one_outcome(&seen);
    assert_eq!(statuses.last().unwrap(), "canceled", "{statuses:?}");
    assert_eq!(deliveries.last().unwrap(), "none", "{deliveries:?}");
    assert_eq!(
        listed(&sys, "status=canceled").await,
        std::slice::from_ref(&id)
    );
    assert_eq!(
        listed(&sys, "status=queued,canceled").await,
        std::slice::from_ref(&id)
    );
    assert!(listed(&sys, "status=processing").await.is_empty());
    assert!(
        listed(&sys, "status=canceled&delivery=pending")
            .await
            .is_empty()
    );
    assert!(
        listed(&sys, "status=queued&delivery=delivered")
            .await
            .is_empty()
    );

    for (old, hint) in [
        ("submitting", "status=starting"),
        ("submitted", "status=starting"),
        ("running", "status=processing"),
        ("finalized", "delivery=delivered"),
        ("finalized_degraded", "delivery=degraded"),
    ] {
        let (status, problem) = list(&sys, &format!("status={old}")).await;
        assert_eq!(status, 400, "{old}: {problem}");
        assert_eq!(problem["field"], "/query/status", "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("no longer a status") && detail.contains(hint),
            "{old}: {detail}"
        );
    }
    let (status, problem) = list(&sys, "delivery=finalized").await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "/query/delivery", "{problem}");
}

// ---------------------------------------------------------------------------------------------
// On each backend
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_polling_client_never_sees_a_terminal_status_change() {
    a_polling_client_never_sees_a_terminal_status_change(embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_a_polling_client_never_sees_a_terminal_status_change() {
    a_polling_client_never_sees_a_terminal_status_change(aws().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_failure_without_a_webhook_has_nothing_to_deliver() {
    a_failure_without_a_webhook_has_nothing_to_deliver(embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_a_failure_without_a_webhook_has_nothing_to_deliver() {
    a_failure_without_a_webhook_has_nothing_to_deliver(aws().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_failing_delivery_degrades_and_the_status_stands() {
    a_failing_delivery_degrades_and_the_status_stands(embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_a_failing_delivery_degrades_and_the_status_stands() {
    a_failing_delivery_degrades_and_the_status_stands(aws().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_list_filters_take_public_statuses() {
    list_filters_take_public_statuses(embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_list_filters_take_public_statuses() {
    list_filters_take_public_statuses(aws().await).await;
}
