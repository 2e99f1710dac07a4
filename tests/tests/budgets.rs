//! Budgets and spend (issue 20, item 3), end to end through the HTTP API on both backends:
//! the embedded one (SQLite, `executor dev`) and the AWS one (the Lambda app over DynamoDB, S3
//! and SQS on moto server).
//!
//! - A create reserves its estimate on the tenant's budget; one that does not fit is `402`
//!   with the budget, what is spent and reserved, and the estimate, and writes nothing.
//! - A retried create with the same Idempotency-Key is answered as before, budget or not.
//! - At finalize the reservation is settled with the actual cost: a success with its cost, a
//!   failure with nothing; nothing stays reserved.
//! - `GET /v1/usage` counts and costs the window by model, provider, day and error class, as
//!   JSON and as CSV, and shows the budget as stored.
//! - A per-model budget refuses only that model.
//!
//! Needs moto server (scripts/services.sh) for the `aws_` tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::{Client, CreateOptions};
use executor_lifecycle::{BudgetPeriod, BudgetRule};
use executor_tests::Harness;
use serde_json::{Value, json};
use std::time::Duration;

const MODEL: &str = "runway/gen4-turbo";
const OTHER: &str = "black-forest-labs/flux-schnell";

struct Sys {
    url: String,
    key: String,
    client: Client,
    _keep: Box<dyn std::any::Any + Send>,
}

/// $0.60 a month for the tenant, and $0.001 a day for [`OTHER`].
fn rules(tenant: &str) -> Vec<BudgetRule> {
    vec![
        BudgetRule {
            tenant: tenant.into(),
            period: BudgetPeriod::Month,
            limit_usd: 0.60,
            model: None,
        },
        BudgetRule {
            tenant: tenant.into(),
            period: BudgetPeriod::Day,
            limit_usd: 0.001,
            model: Some(OTHER.into()),
        },
    ]
}

async fn embedded() -> Sys {
    let h = Harness::start_with(|o| o.lifecycle.budgets = rules("dev")).await;
    Sys {
        url: h.sys.url.clone(),
        key: h.sys.dev_key.clone(),
        client: Client::new(&h.sys.url, &h.sys.dev_key).unwrap(),
        _keep: Box::new(h),
    }
}

async fn aws() -> Sys {
    let a = executor_tests::aws_sys::start("budgets", "acme", |l| l.budgets = rules("acme")).await;
    Sys {
        client: Client::new(&a.url, &a.key).unwrap(),
        url: a.url.clone(),
        key: a.key.clone(),
        _keep: Box::new(a),
    }
}

/// A gen4-turbo video of `seconds` (5 s: $0.25, 10 s: $0.50 at 5 credits a second).
fn video(prompt: &str, seconds: u32) -> Value {
    json!({"promptImage": "https://example.com/a.png", "promptText": prompt, "duration": seconds})
}

async fn create(sys: &Sys, model: &str, input: &Value, key: Option<&str>) -> (u16, Value) {
    sys.client
        .create(
            model,
            input,
            &CreateOptions {
                idempotency_key: key.map(str::to_string),
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

async fn get(sys: &Sys, path: &str, accept: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", sys.url))
        .bearer_auth(&sys.key)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.text().await.unwrap();
    if accept == "text/csv" && status == 200 {
        assert!(ct.starts_with("text/csv"), "{ct}");
    }
    (status, body)
}

async fn usage(sys: &Sys, query: &str) -> Value {
    let (status, body) = get(sys, &format!("/v1/usage?{query}"), "application/json").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn approx(v: &Value, expected: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - expected).abs() < 1e-9)
}

/// The execution once finalize committed its cost (terminal, delivery no longer pending).
async fn wait_settled(sys: &Sys, id: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..1200 {
        last = sys.client.get(id).await.unwrap();
        if last["delivery"]["state"]
            .as_str()
            .is_some_and(|s| s != "pending")
        {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} did not settle: {last}");
}

async fn estimate(sys: &Sys, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/estimates", sys.url))
        .bearer_auth(&sys.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn reserves_refuses_and_settles(sys: Sys) {
    // Estimates first: nothing is created by them.
    let (s, e) = estimate(&sys, json!({"model": MODEL, "input": video("x", 10)})).await;
    assert_eq!(s, 200, "{e}");
    assert!(approx(&e["estimate_usd"], 0.50), "{e}");
    assert_eq!(
        e["lines"][0]["source"], "estimate from input.duration",
        "{e}"
    );
    assert_eq!(
        e["budgets"].as_array().unwrap().len(),
        1,
        "only the tenant-wide one: {e}"
    );
    assert_eq!(e["budgets"][0]["fits"], true, "{e}");
    let (s, e) = estimate(&sys, json!({"model": OTHER, "input": {"prompt": "a cat"}})).await;
    assert_eq!(s, 200, "{e}");
    assert!(approx(&e["estimate_usd"], 0.003), "{e}");
    let day = e["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["period"] == "day")
        .unwrap_or_else(|| panic!("{e}"));
    assert_eq!(day["fits"], false, "{e}");
    let (s, e) = estimate(
        &sys,
        json!({"model": MODEL, "input": {"promptText": "no image"}}),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert!(e["field"].as_str().unwrap().starts_with("/input"), "{e}");

    // Two executions fit $0.60 (a success and a failure, $0.25 each estimated).
    let (s, ok) = create(&sys, MODEL, &video("a lighthouse", 5), Some("k-ok")).await;
    assert!(s == 201 || s == 202, "{s} {ok}");
    let (s, failing) = create(&sys, MODEL, &video("sim:fail a storm", 5), None).await;
    assert!(s == 201 || s == 202, "{s} {failing}");

    // A third ($0.50) does not fit whatever the first two are at: at least $0.25 is spent or
    // reserved (the success), so at most $0.35 is left.
    let (s, refused) = create(&sys, MODEL, &video("a third", 10), None).await;
    assert_eq!(s, 402, "{refused}");
    assert_eq!(
        refused["type"],
        "https://executor.dev/problems/budget-exceeded"
    );
    assert_eq!(refused["error_class"], "budget_exceeded");
    assert!(approx(&refused["estimate_usd"], 0.50), "{refused}");
    let b = &refused["budget"];
    assert_eq!(b["period"], "month", "{refused}");
    assert!(approx(&b["limit_usd"], 0.60), "{refused}");
    let held = b["spent_usd"].as_f64().unwrap() + b["reserved_usd"].as_f64().unwrap();
    assert!(
        (0.25 - 1e-9..=0.50 + 1e-9).contains(&held),
        "spent + reserved {held}: {refused}"
    );
    assert!(approx(&b["remaining_usd"], 0.60 - held), "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("does not fit"),
        "{refused}"
    );

    // The retried create is the first one, not a refusal.
    let (s, again) = create(&sys, MODEL, &video("a lighthouse", 5), Some("k-ok")).await;
    assert!(s == 200 || s == 201 || s == 202, "{s} {again}");
    assert_eq!(again["id"], ok["id"]);

    let ok = wait_settled(&sys, ok["id"].as_str().unwrap()).await;
    let failing = wait_settled(&sys, failing["id"].as_str().unwrap()).await;
    assert_eq!(ok["status"], "succeeded", "{ok}");
    assert_eq!(failing["status"], "failed", "{failing}");
    let cost = ok["cost"]["provider_usd_micros"].as_i64().unwrap();
    assert_eq!(cost, 250_000, "{ok}");

    // Settled: the success's actual cost is spent, the failure's nothing; nothing reserved.
    let u = usage(&sys, "group_by=model").await;
    let budget = u["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["period"] == "month")
        .unwrap_or_else(|| panic!("{u}"));
    assert!(approx(&budget["spent_usd"], 0.25), "{u}");
    assert!(approx(&budget["reserved_usd"], 0.0), "{u}");
    assert_eq!(budget["settled_executions"], 2, "{u}");
    assert!(approx(&budget["remaining_usd"], 0.35), "{u}");
    assert_eq!(
        u["total"]["executions"], 2,
        "the refused create wrote nothing: {u}"
    );
    assert_eq!(u["total"]["succeeded"], 1, "{u}");
    assert_eq!(u["total"]["failed"], 1, "{u}");
    assert_eq!(u["total"]["billable"], 1, "{u}");
    assert_eq!(u["total"]["cost_usd_micros"], cost, "{u}");
    assert_eq!(u["data"].as_array().unwrap().len(), 1, "{u}");
    assert_eq!(u["data"][0]["key"], MODEL, "{u}");

    // Now $0.35 is left: a $0.25 create fits again, and is refused once more is in flight.
    let (s, fits) = create(&sys, MODEL, &video("fits again", 5), None).await;
    assert!(s == 201 || s == 202, "{s} {fits}");
    let (s, over) = create(&sys, MODEL, &video("over again", 5), None).await;
    assert_eq!(s, 402, "{over}");
    wait_settled(&sys, fits["id"].as_str().unwrap()).await;

    // The per-model budget ($0.001 a day) refuses that model's estimate only.
    let (s, other) = create(&sys, OTHER, &json!({"prompt": "a cat"}), None).await;
    assert_eq!(s, 402, "{other}");
    assert_eq!(other["budget"]["model"], OTHER, "{other}");
    assert_eq!(other["budget"]["period"], "day", "{other}");

    // Groupings and CSV.
    let u = usage(&sys, "group_by=error_class").await;
    let keys: Vec<&str> = u["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{u}");
    assert!(keys.contains(&"none"), "{u}");
    let u = usage(&sys, "group_by=provider").await;
    assert_eq!(u["data"][0]["key"], "runway", "{u}");
    assert_eq!(u["data"][0]["executions"], 3, "{u}");
    let u = usage(&sys, "group_by=day").await;
    assert_eq!(u["data"].as_array().unwrap().len(), 1, "{u}");
    let today = u["data"][0]["key"].as_str().unwrap();
    assert_eq!(today.len(), 10, "{u}");
    let (s, csv) = get(&sys, "/v1/usage?group_by=model", "text/csv").await;
    assert_eq!(s, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("group,executions,succeeded,failed"),
        "{csv}"
    );
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].starts_with(&format!("{MODEL},3,2,1,0,0,0,2,0.500000,500000,")),
        "{csv}"
    );

    // A window before today holds nothing; bad parameters are 400 naming them.
    let u = usage(&sys, "from=2020-01-01&to=2020-02-01").await;
    assert_eq!(u["total"]["executions"], 0, "{u}");
    let (s, body) = get(&sys, "/v1/usage?group_by=week", "application/json").await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("/query/group_by"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_budget_reserves_refuses_and_settles() {
    reserves_refuses_and_settles(embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_budget_reserves_refuses_and_settles() {
    reserves_refuses_and_settles(aws().await).await;
}
