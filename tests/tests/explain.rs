//! Explain covers every event kind: one system runs a batch of executions chosen so that,
//! between them, every lifecycle event is committed (inline success, polling, failures at
//! submit and at the provider, a rate-limited retry, an ambiguous submit, a capacity wait, a
//! cancel, a deadline, delivery retries, a parked delivery and its redrive). For every
//! execution, `executor explain`'s rendering shows each transition of its timeline with its
//! status change, each provider call (method, URL, status), each failure's class and the
//! cost lines; and the events seen, together, are all of `Event::ALL`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::CreateOptions;
use executor_lifecycle::Event;
use executor_tests::Harness;
use executor_tests::customer::endpoint;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// The repository's bundles, with Runway's create call limited to 1 s so that a create the
/// simulator answers late is ambiguous.
fn bundles_with_short_runway_timeout(dir: &Path) {
    executor_tests::copy_bundles(dir);
    let file = dir.join("providers/runway.yaml");
    let create = "    json: \"{{ input | merge({'model': model.name}) }}\"\n";
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(create), "the create step moved");
    let text = text.replacen(create, &format!("{create}    timeout_seconds: 1\n"), 1);
    std::fs::write(file, text).unwrap();
}

async fn create(h: &Harness, model: &str, prompt: &str, opts: &CreateOptions) -> String {
    let (_, schema) = models(h, model).await;
    let (status, body) = h
        .client
        .create(model, &Harness::input(&schema, prompt), opts)
        .await
        .unwrap();
    assert!(status == 201 || status == 202, "{status} {body}");
    body["id"].as_str().unwrap().to_string()
}

async fn models(h: &Harness, model: &str) -> (String, Value) {
    let all = h.client.models().await.unwrap();
    let m = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == model)
        .unwrap_or_else(|| panic!("no model {model}"))
        .clone();
    (model.to_string(), m["input_schema"].clone())
}

async fn wait_for_job(h: &Harness, id: &str) {
    for _ in 0..200 {
        if h.client.get(id).await.unwrap()["provider_job_id"].is_string() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{id} never reached the provider");
}

/// Checks the rendering of one execution against its timeline; returns the events seen.
fn check_rendering(view: &Value, timeline: &Value) -> Vec<String> {
    let text = executor_cli::render::explain(view, timeline, false);
    let id = view["id"].as_str().unwrap();
    assert!(text.contains(id), "{text}");
    let mut events = Vec::new();
    for r in timeline["data"].as_array().unwrap() {
        let event = r["event"].as_str().unwrap();
        let from = r["from"].as_str().unwrap_or("(new)");
        let to = r["to"].as_str().unwrap();
        let head = text
            .lines()
            .find(|l| {
                l.contains(&format!("v{} ", r["version"]))
                    && l.contains(event)
                    && l.ends_with(&format!("{from} -> {to}"))
            })
            .unwrap_or_else(|| panic!("{id}: no line for v{} {event}:\n{text}", r["version"]));
        assert!(head.contains(r["action"].as_str().unwrap()), "{head}");
        for c in r["calls"].as_array().into_iter().flatten() {
            assert!(c["url"].is_string(), "{id}: a call without a URL: {c}");
            let line = format!(
                "{} {}",
                c["method"].as_str().unwrap(),
                c["url"].as_str().unwrap()
            );
            assert!(text.contains(&line), "{id}: call {line} missing:\n{text}");
            if let Some(s) = c["status"].as_u64() {
                assert!(text.contains(&format!("{line} -> {s}")), "{text}");
            }
        }
        if let Some(f) = r["failure"].as_object() {
            let line = format!("failure {}: ", f["class"].as_str().unwrap());
            assert!(text.contains(&line), "{id}: {line} missing:\n{text}");
        }
        if let Some(lines) = r["detail"]["cost_lines"].as_array() {
            for l in lines {
                let unit = format!("{} x $", l["unit"].as_str().unwrap());
                assert!(
                    text.contains(&unit),
                    "{id}: cost line {unit} missing:\n{text}"
                );
            }
        }
        events.push(event.to_string());
    }
    if let Some(e) = view["error"].as_object() {
        assert!(
            text.contains(&format!("error {} (", e["class"].as_str().unwrap())),
            "{text}"
        );
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_every_event_kind() {
    let bundles = tempfile::tempdir().unwrap();
    bundles_with_short_runway_timeout(bundles.path());
    let h = Harness::start_with(|o| {
        o.bundles_dir = bundles.path().to_path_buf();
        o.capacity_overrides.insert("fal".into(), 1);
        // No retries inside a call: a 429 goes back to the queue as a submit retry.
        o.resilience.max_retries = 0;
    })
    .await;
    let secret = executor_cli::local::LocalOptions::dev(".".into()).webhook_secret;
    let none = CreateOptions::default();
    let mut ids = Vec::new();

    // Inline success, delivered after two failed attempts (delivery_retry).
    let (_, flaky) = endpoint(&secret, 2).await;
    let flaky_opts = CreateOptions {
        webhook_url: Some(flaky),
        ..Default::default()
    };
    ids.push(create(&h, "openai/gpt-image-1", "a kite", &flaky_opts).await);
    // Refused at submit (submit_failed), rate-limited once then accepted (submit_retry).
    ids.push(create(&h, "openai/gpt-image-1", "sim:invalid", &none).await);
    ids.push(create(&h, "openai/gpt-image-1", "sim:rate_limit=1", &none).await);
    // Polling to success (job_created, started, still_pending, job_succeeded) and to failure.
    ids.push(create(&h, "runway/gen4-turbo", "slow sim:duration=1500", &none).await);
    ids.push(create(&h, "runway/gen4-turbo", "sim:fail", &none).await);
    // The create answered after the call's 1 s timeout: the job's fate is unknown.
    ids.push(create(&h, "runway/gen4-turbo", "sim:hang_after_create=3000", &none).await);
    // Capacity 1 at fal: the second waits for the first's lease (capacity_wait).
    ids.push(create(&h, "fal-ai/flux-dev", "first sim:duration=1500", &none).await);
    ids.push(create(&h, "fal-ai/flux-dev", "second sim:duration=200", &none).await);
    // Over its maximum duration (deadline_exceeded).
    let short = CreateOptions {
        max_duration_seconds: Some(1),
        ..Default::default()
    };
    ids.push(create(&h, "runway/gen4-turbo", "slow sim:duration=60000", &short).await);
    // Canceled while the provider runs it.
    let cancel = create(&h, "runway/gen4-turbo", "slow sim:duration=60000", &none).await;
    wait_for_job(&h, &cancel).await;
    h.client.cancel(&cancel).await.unwrap();
    ids.push(cancel);
    // Delivery that keeps failing is parked (delivery_failed), then redriven (redelivered).
    let (broken, broken_url) = endpoint(&secret, u32::MAX).await;
    let broken_opts = CreateOptions {
        webhook_url: Some(broken_url),
        ..Default::default()
    };
    let parked = create(&h, "openai/gpt-image-1", "parked", &broken_opts).await;
    assert_eq!(h.wait(&parked).await["delivery"]["state"], "degraded");
    *broken.fail_next.lock() = 0;
    let (status, body) = h.client.redrive(&parked).await.unwrap();
    assert_eq!(status, 200, "{body}");
    ids.push(parked);

    // A callback execution, and a forged callback to it: refused, and shown by explain.
    let callback = create(&h, "black-forest-labs/flux-schnell", "a fox", &none).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = reqwest::Client::new()
        .post(format!("{}/v1/webhooks/replicate/{callback}", h.sys.url))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_forged")
        .header("webhook-timestamp", now.to_string())
        .header(
            "webhook-signature",
            "v1,Zm9yZ2VkIHNpZ25hdHVyZSBvZiAzMiBieXRlcyEhISE=",
        )
        .body(r#"{"id":"forged","status":"succeeded","output":["https://evil.example/x.png"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let view = h.wait(&callback).await;
    assert_eq!(
        view["outcome"], "succeeded",
        "the forgery changed nothing: {view}"
    );
    let rejected = view["callbacks_rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{view}");
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{view}"
    );
    assert!(
        !view["callbacks_received"].as_array().unwrap().is_empty(),
        "{view}"
    );
    let text =
        executor_cli::render::explain(&view, &h.client.events(&callback).await.unwrap(), false);
    assert!(text.contains("callback rejected at "), "{text}");
    assert!(text.contains("callbacks received (verified): "), "{text}");
    ids.push(callback);

    // A fallback chain: the primary's empty output moves the execution to the next model.
    let chained = create_raw(
        &h,
        serde_json::json!({
            "model": "bfl/flux-pro-1.1",
            "fallbacks": ["fal-ai/flux-dev"],
            "input": {"prompt": "sim:only=bfl sim:empty_output explain a chain"},
        }),
    )
    .await;
    let view = h.wait(&chained).await;
    let text =
        executor_cli::render::explain(&view, &h.client.events(&chained).await.unwrap(), false);
    assert!(text.contains("attempt 1: bfl/flux-pro-1.1"), "{text}");
    assert!(text.contains("partial_result"), "{text}");
    assert!(text.contains("attempt 2: fal-ai/flux-dev"), "{text}");
    ids.push(chained);

    // A retry: the job failed after it was created (fal's runner_disconnected), run again.
    let retried = create_raw(
        &h,
        serde_json::json!({
            "model": "fal-ai/flux-dev",
            "retries": 1,
            "input": {"prompt": "sim:fail_jobs=1 explain a retry"},
        }),
    )
    .await;
    let view = h.wait(&retried).await;
    let text =
        executor_cli::render::explain(&view, &h.client.events(&retried).await.unwrap(), false);
    assert!(text.contains("attempt 1: fal-ai/flux-dev"), "{text}");
    assert!(text.contains("attempt 2: fal-ai/flux-dev"), "{text}");
    ids.push(retried);

    let mut seen = BTreeSet::new();
    for id in &ids {
        let view = h.wait(id).await;
        let timeline = h.client.events(id).await.unwrap();
        for e in check_rendering(&view, &timeline) {
            seen.insert(e);
        }
    }
    let all: BTreeSet<String> = Event::ALL.iter().map(|e| e.as_str().to_string()).collect();
    let missing: Vec<&String> = all.difference(&seen).collect();
    assert!(missing.is_empty(), "no execution committed {missing:?}");
    assert_eq!(seen, all);
    h.sys.stop().await;
}

/// Creates an execution from a raw body (fields the client's options do not cover); its id.
async fn create_raw(h: &Harness, body: Value) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{}/v1/executions", h.sys.url))
        .bearer_auth(&h.sys.dev_key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["id"].as_str().unwrap().to_string()
}
