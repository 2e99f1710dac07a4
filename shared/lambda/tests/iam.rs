//! Every AWS operation a function's code makes is one its role allows. Each of the four
//! functions runs as its own [`App`] with its own request meter (the SDK interceptor that sees
//! every transmitted request): the API and the submit queue in `submit`, the poll queue and
//! the scheduled reconcile in `poll`, the finalize queue in `finalize`, provider callbacks in
//! `webhook`. Executions of every shape run through them (with a cancel, a customer webhook,
//! a lost submit message the reconciler re-drives), and each operation recorded must be listed
//! for that function in `tests/iam/required-actions.json` — the file `scripts/iam-check.py`
//! proves template.yaml's roles (as SAM transforms them) allow exactly. A code path that
//! starts calling something new fails here until the list and the template grant it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{catalog_for, event, world};
use executor_aws::RequestMeter;
use executor_lambda::App;
use executor_lifecycle::QueueName;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "whsec_ZGV2LW91dGJvdW5kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM=";

/// `service:Operation` names the functions' code may call, per function.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/iam/required-actions.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["functions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(f, needs)| {
            let ops = needs
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["by"].as_str().unwrap_or("code") == "code")
                .map(|n| n["action"].as_str().unwrap().to_string())
                .collect();
            (f.clone(), ops)
        })
        .collect()
}

/// The IAM service prefix of an SDK service name as the meter records it.
fn prefix(service: &str) -> String {
    service.to_lowercase().replace([' ', '-'], "")
}

async fn api(app: &App, mut ev: Value) -> (u16, Value) {
    let resp = app.dispatch(ev.take()).await.unwrap();
    let body: Value =
        serde_json::from_str(resp["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    (resp["statusCode"].as_u64().unwrap() as u16, body)
}

fn create_event(model: &str, input: Value, webhook_url: Option<&str>) -> Value {
    let mut ev = event("api-create.json");
    let mut body = json!({"model": model, "input": input});
    if let Some(u) = webhook_url {
        body["webhook_url"] = json!(u);
    }
    ev["body"] = json!(body.to_string());
    ev["headers"]["idempotency-key"] = json!(ulid::Ulid::new().to_string());
    ev
}

fn path_event(name: &str, method: &str, path: &str) -> Value {
    let mut ev = event(name);
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["path"] = json!(path);
    ev["requestContext"]["http"]["method"] = json!(method);
    ev
}

async fn wait_final(app: &App, id: &str) -> Value {
    for _ in 0..400 {
        let (_, v) = api(
            app,
            path_event("api-get.json", "GET", &format!("/v1/executions/{id}")),
        )
        .await;
        if matches!(
            v["delivery"]["state"].as_str(),
            Some("delivered" | "degraded" | "none")
        ) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_function_calls_only_what_its_role_allows() {
    let w = world().await;
    let meters: BTreeMap<&str, RequestMeter> = ["submit", "poll", "finalize", "webhook"]
        .into_iter()
        .map(|f| (f, RequestMeter::new()))
        .collect();
    let mut apps: BTreeMap<&str, Arc<App>> = BTreeMap::new();
    // The customer endpoint below is on loopback.
    let mut lifecycle = w.lifecycle.clone();
    lifecycle.webhook_targets.allow_loopback = true;
    for (f, m) in &meters {
        let app = App::build_metered(
            &w.cfg,
            lifecycle.clone(),
            catalog_for(&w.sims),
            SECRET,
            Some(m.clone()),
        )
        .await
        .unwrap();
        apps.insert(f, Arc::new(app));
    }
    *w.webhook_router.write().unwrap() = Some(apps["webhook"].router());
    w.start_mapping(QueueName::Submit, apps["submit"].clone());
    w.start_mapping(QueueName::Poll, apps["poll"].clone());
    w.start_mapping(QueueName::Finalize, apps["finalize"].clone());
    let submit = apps["submit"].clone();

    // A customer endpoint for outcome webhooks.
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", hook.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
        axum::serve(hook, app).await.unwrap();
    });

    let mut ids = Vec::new();
    for (model, input) in [
        ("openai/gpt-image-1", json!({"prompt": "iam immediate"})),
        (
            "runway/gen4-turbo",
            json!({"promptImage": "https://example.com/a.png", "promptText": "iam polling"}),
        ),
        (
            "black-forest-labs/flux-schnell",
            json!({"prompt": "iam callback sim:duration=2500"}),
        ),
        (
            "fal-ai/flux-dev",
            json!({"prompt": "iam fal callback sim:duration=1500"}),
        ),
    ] {
        let (status, body) = api(&submit, create_event(model, input, Some(&hook_url))).await;
        assert!(status == 201 || status == 202, "{model}: {status} {body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    // A cancel of a long job.
    let (_, long) = api(
        &submit,
        create_event(
            "runway/gen4-turbo",
            json!({"promptImage": "https://example.com/a.png", "promptText": "iam cancel sim:duration=60000"}),
            None,
        ),
    )
    .await;
    let long = long["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = api(
        &submit,
        path_event(
            "api-cancel.json",
            "POST",
            &format!("/v1/executions/{long}/cancel"),
        ),
    )
    .await;
    assert!(status == 200 || status == 202, "cancel: {status}");
    ids.push(long);
    for id in &ids {
        let v = wait_final(&submit, id).await;
        assert!(v["outcome"].is_string(), "{v}");
        let _ = api(
            &submit,
            path_event(
                "api-get.json",
                "GET",
                &format!("/v1/executions/{id}/events"),
            ),
        )
        .await;
        let _ = api(
            &submit,
            path_event("api-get.json", "GET", &format!("/v1/executions/{id}/raw")),
        )
        .await;
    }
    let _ = api(
        &submit,
        path_event("api-list.json", "GET", "/v1/executions"),
    )
    .await;
    let _ = api(&submit, path_event("api-get.json", "GET", "/v1/failures")).await;
    // The scheduled reconcile runs in the poll function.
    let _ = apps["poll"]
        .dispatch(event("schedule-reconcile.json"))
        .await
        .unwrap();

    let webhook = meters["webhook"].snapshot();
    // A callback recorded: its id (and, when small, its body) written to the guard item, a
    // larger body as a blob first.
    assert!(
        webhook
            .keys()
            .any(|(s, o)| prefix(s) == "dynamodb" && o == "UpdateItem")
            && w.sims.stats().provider("replicate").webhooks_delivered > 0,
        "no provider callback reached the webhook function: {webhook:?}; simulators: {:?}",
        w.sims.stats()
    );
    let allowed = allowed();
    let mut missing = Vec::new();
    for (f, m) in &meters {
        let seen = m.snapshot();
        assert!(
            !seen.is_empty(),
            "{f} made no AWS request: the test drove nothing there"
        );
        for (service, op) in seen.keys() {
            let action = format!("{}:{op}", prefix(service));
            if !allowed[*f].contains(&action) {
                missing.push(format!("{f}: {action}"));
            }
        }
        println!(
            "{f}: {}",
            seen.iter()
                .map(|((s, o), n)| format!("{}:{o}={n}", prefix(s)))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    assert!(
        missing.is_empty(),
        "operations the code made that tests/iam/required-actions.json (so template.yaml's role) does not allow: {missing:?}"
    );
    let _ = w.shutdown.send(true);
}
