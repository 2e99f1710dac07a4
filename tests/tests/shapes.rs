//! End to end, per provider shape, through the real HTTP API on the embedded backend against
//! the provider simulators: statuses, outputs, error classes, cost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::CreateOptions;
use executor_tests::Harness;
use serde_json::json;

fn assert_succeeded(v: &serde_json::Value) {
    assert_eq!(v["status"], "succeeded", "{v:#}");
    assert_eq!(v["outcome"], "succeeded", "{v:#}");
    assert_eq!(v["delivery"]["state"], "none", "{v:#}");
    assert!(
        !v["outputs"].as_array().unwrap().is_empty(),
        "no outputs: {v:#}"
    );
    assert!(
        v["cost"]["provider_usd_micros"].as_i64().unwrap() > 0,
        "no cost: {v:#}"
    );
    assert_eq!(v["cost"]["billable"], true);
    assert!(v.get("error").is_none(), "{v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shape_succeeds_with_outputs_and_cost() {
    let h = Harness::start().await;
    for shape in ["immediate", "polling", "callback"] {
        let (model, schema) = h.model_of_shape(shape).await;
        let v = h
            .run(
                &model,
                &Harness::input(&schema, &format!("a red fox, {shape}")),
            )
            .await;
        assert_succeeded(&v);
        assert_eq!(v["shape"], shape);
        let id = v["id"].as_str().unwrap();
        assert_eq!(h.outcome_events(id).await, 1);
        let records = h.transitions(id).await;
        assert_eq!(records.first().unwrap().event.as_str(), "accepted");
        assert_eq!(records.last().unwrap().to.as_str(), "finalized");
        let versions: Vec<u64> = records.iter().map(|r| r.version).collect();
        assert_eq!(
            versions,
            (0..records.len() as u64).collect::<Vec<_>>(),
            "gaps in {versions:?}"
        );
        let kinds: Vec<String> = v["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["kind"].as_str().unwrap().to_string())
            .collect();
        assert!(
            kinds
                .iter()
                .all(|k| ["image", "video", "audio", "text", "json"].contains(&k.as_str()))
        );
    }
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_runs_in_the_request_path() {
    let h = Harness::start().await;
    let (model, schema) = h.model_of_shape("immediate").await;
    let (status, body) = h
        .client
        .create(
            &model,
            &Harness::input(&schema, "a blue bird"),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["outcome"], "succeeded");
    assert!(!body["outputs"].as_array().unwrap().is_empty());
    h.sys.stop().await;
}

/// A provider's inline image at its real size (OpenAI's `b64_json` of a 1024x1024 PNG is
/// megabytes) is moved to the blob store at ingestion: the execution finalizes (its guard
/// item, outbox and outcome event stay small) and the output is a stable URL serving the
/// bytes. Before: the image rode in the finalize commit's outbox, over DynamoDB's 400 KB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_size_inline_image_is_stored_and_served_by_url() {
    let h = Harness::start().await;
    let (model, schema) = h.model_of_shape("immediate").await;
    let v = h
        .run(&model, &Harness::input(&schema, "a full-size lighthouse"))
        .await;
    assert_succeeded(&v);
    let out = &v["outputs"][0];
    assert!(out["data"].is_null(), "inline data left in the outputs");
    let url = out["url"].as_str().unwrap();
    assert!(url.contains("/v1/media/"), "{url}");
    let bytes = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    assert!(bytes.len() > 1_000_000, "{} bytes", bytes.len());
    assert_eq!(&bytes[1..4], b"PNG");
    let g = executor_lifecycle::GuardStore::get(h.sys.store.as_ref(), v["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(serde_json::to_string(&g).unwrap().len() < 64 * 1024);
    h.sys.stop().await;
}

/// Behind a gateway that cuts requests (API Gateway: 30 s), an immediate model whose provider
/// calls can outlast the inline cap answers 202 and runs from the submit queue; its outcome
/// is read by poll (or webhook). Before: it ran in the request and was cut mid-call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_model_slower_than_the_inline_cap_runs_from_the_queue() {
    // OpenAI's submit timeout is 120 s, 2.4 s at the harness's time scale: over a 1 s cap.
    let h = Harness::start_with(|o| o.api.inline_max_seconds = 1).await;
    let (model, schema) = h.model_of_shape("immediate").await;
    assert_eq!(model, "openai/gpt-image-1");
    let (status, body) = h
        .client
        .create(
            &model,
            &Harness::input(&schema, "a slow bird"),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(status, 202, "{body:#}");
    let v = h.wait(body["id"].as_str().unwrap()).await;
    assert_succeeded(&v);
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_429_then_success_is_retried() {
    let h = Harness::start().await;
    for shape in ["immediate", "polling", "callback"] {
        let (model, schema) = h.model_of_shape(shape).await;
        let prompt = format!("a cat sim:rate_limit=1 {shape}");
        let v = h.run(&model, &Harness::input(&schema, &prompt)).await;
        assert_succeeded(&v);
        // A create is never re-sent by the outbound client once it reached the provider: the
        // lifecycle waits and submits again, and a refusal (429: nothing was created) does
        // not use up an attempt.
        assert_eq!(v["attempts"], 1, "{v:#}");
        let records = h.transitions(v["id"].as_str().unwrap()).await;
        let throttled_at = records
            .iter()
            .find(|r| r.calls.iter().any(|c| c.status == Some(429)))
            .expect("the 429 is recorded");
        assert_eq!(throttled_at.event, executor_lifecycle::Event::SubmitRetry);
        assert_eq!(
            throttled_at.detail["wait"], "rate_limited",
            "{throttled_at:?}"
        );
        let calls: Vec<_> = records.iter().flat_map(|r| r.calls.iter()).collect();
        assert!(
            calls.iter().all(|c| c.retried.is_none()),
            "the transport re-sent a create: {calls:?}"
        );
        assert!(
            calls.iter().any(|c| c.status.is_some_and(|s| s < 300)),
            "then success"
        );
    }
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_classified() {
    let h = Harness::start().await;
    for shape in ["immediate", "polling", "callback"] {
        let (model, schema) = h.model_of_shape(shape).await;
        for (directive, class) in [
            ("sim:invalid", "validation_error"),
            ("sim:content_policy", "content_policy"),
            ("sim:empty_output", "partial_result"),
        ] {
            let v = h
                .run(
                    &model,
                    &Harness::input(&schema, &format!("x {directive} {shape}")),
                )
                .await;
            assert_eq!(v["outcome"], "failed", "{shape} {directive}: {v:#}");
            assert_eq!(v["error"]["class"], class, "{shape} {directive}: {v:#}");
            assert_eq!(v["cost"]["billable"], false);
            assert!(!v["error"]["message"].as_str().unwrap().is_empty());
        }
    }
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_at_submit_naming_the_field() {
    let h = Harness::start().await;
    let (model, _) = h.model_of_shape("immediate").await;
    let (status, body) = h
        .client
        .create(&model, &json!({}), &Default::default())
        .await
        .unwrap();
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(body["error_class"], "validation_error");
    assert!(body["field"].as_str().unwrap().starts_with('/'), "{body:#}");
    let (status, body) = h
        .client
        .create("nope/unknown", &json!({"prompt": "x"}), &Default::default())
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(body["field"], "/model");
    // A customer webhook aimed inside (cloud metadata, a private network) is refused at
    // create, even in development (which allows only loopback).
    let (_, schema) = h.model_of_shape("immediate").await;
    for (url, why) in [
        ("http://169.254.169.254/latest/meta-data/iam/", "link-local"),
        ("http://10.1.2.3/hook", "private"),
        ("gopher://example.com/", "scheme"),
    ] {
        let opts = executor_cli::client::CreateOptions {
            webhook_url: Some(url.into()),
            ..Default::default()
        };
        let (status, body) = h
            .client
            .create(&model, &Harness::input(&schema, "x"), &opts)
            .await
            .unwrap();
        assert_eq!(status, 400, "{url}: {body:#}");
        assert_eq!(body["field"], "/webhook_url", "{body:#}");
        assert!(body["detail"].as_str().unwrap().contains(why), "{body:#}");
    }
    let (counts, total) = (h.sys.store.count_by_status().await.unwrap(), 0u64);
    assert_eq!(
        counts.iter().map(|(_, n)| *n).sum::<u64>(),
        total,
        "nothing half-written: {counts:?}"
    );
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_lost_is_finished_by_the_safety_poll() {
    let h = Harness::start().await;
    let (model, schema) = h.model_of_shape("callback").await;
    let v = h
        .run(&model, &Harness::input(&schema, "a moth sim:lose_callback"))
        .await;
    assert_succeeded(&v);
    let records = h.transitions(v["id"].as_str().unwrap()).await;
    assert!(
        records
            .iter()
            .all(|r| r.detail.get("callbacks_consumed").is_none()),
        "no callback should exist"
    );
    assert!(
        records
            .iter()
            .any(|r| r.action == "poll" && !r.calls.is_empty()),
        "a safety poll asked the provider"
    );
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_callback_is_consumed_once() {
    let h = Harness::start().await;
    let (model, schema) = h.model_of_shape("callback").await;
    let v = h
        .run(
            &model,
            &Harness::input(&schema, "a moth sim:duplicate_callback"),
        )
        .await;
    assert_succeeded(&v);
    let id = v["id"].as_str().unwrap();
    assert_eq!(h.outcome_events(id).await, 1);
    let records = h.transitions(id).await;
    let consumed: Vec<String> = records
        .iter()
        .filter_map(|r| r.detail.get("callbacks_consumed"))
        .flat_map(|c| {
            c.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
        })
        .collect();
    let mut dedup = consumed.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(
        consumed.len(),
        dedup.len(),
        "a callback was consumed twice: {consumed:?}"
    );
    assert!(!consumed.is_empty(), "the callback was used");
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_duration_exceeded_times_out() {
    let h = Harness::start().await;
    for shape in ["polling", "callback"] {
        let (model, schema) = h.model_of_shape(shape).await;
        let opts = CreateOptions {
            max_duration_seconds: Some(1),
            ..Default::default()
        };
        let (status, body) = h
            .client
            .create(
                &model,
                &Harness::input(&schema, "slow sim:duration=60000"),
                &opts,
            )
            .await
            .unwrap();
        assert_eq!(status, 202);
        let v = h.wait(body["id"].as_str().unwrap()).await;
        assert_eq!(v["outcome"], "timed_out", "{v:#}");
        assert_eq!(v["error"]["class"], "timeout");
    }
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_running() {
    let h = Harness::start().await;
    for shape in ["polling", "callback"] {
        let (model, schema) = h.model_of_shape(shape).await;
        let (_, body) = h
            .client
            .create(
                &model,
                &Harness::input(&schema, "slow sim:duration=60000"),
                &Default::default(),
            )
            .await
            .unwrap();
        let id = body["id"].as_str().unwrap().to_string();
        // Wait until the provider has the job.
        for _ in 0..100 {
            let v = h.client.get(&id).await.unwrap();
            if v["provider_job_id"].is_string() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let before = h
            .sys
            .simulators
            .as_ref()
            .unwrap()
            .stats()
            .provider(&shape_provider(&h, shape).await)
            .cancels;
        let c = h.client.cancel(&id).await.unwrap();
        assert_eq!(c["cancel_requested"], true);
        let v = h.wait(&id).await;
        assert_eq!(v["outcome"], "canceled", "{v:#}");
        assert_eq!(v["error"]["class"], "canceled");
        let after = h
            .sys
            .simulators
            .as_ref()
            .unwrap()
            .stats()
            .provider(&shape_provider(&h, shape).await)
            .cancels;
        assert!(after > before, "the provider job was canceled too");
    }
    h.sys.stop().await;
}

async fn shape_provider(h: &Harness, shape: &str) -> String {
    let (model, _) = h.model_of_shape(shape).await;
    let models = h.client.models().await.unwrap();
    models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == model.as_str())
        .unwrap()["provider"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_create_retried_returns_the_same_execution() {
    let h = Harness::start().await;
    let (model, schema) = h.model_of_shape("polling").await;
    let prompt = "idempotent lighthouse";
    let input = Harness::input(&schema, prompt);
    let opts = CreateOptions {
        idempotency_key: Some("key-123".into()),
        ..Default::default()
    };
    let (s1, b1) = h.client.create(&model, &input, &opts).await.unwrap();
    let (s2, b2) = h.client.create(&model, &input, &opts).await.unwrap();
    assert_eq!(s1, 202);
    assert_eq!(s2, 200);
    assert_eq!(b1["id"], b2["id"]);
    let v = h.wait(b1["id"].as_str().unwrap()).await;
    assert_eq!(v["outcome"], "succeeded");
    let provider = shape_provider(&h, "polling").await;
    assert_eq!(h.creates(&provider, prompt), 1, "one provider job");
    // Same key, different body: refused.
    let other = Harness::input(&schema, "something else");
    let (s3, b3) = h.client.create(&model, &other, &opts).await.unwrap();
    assert_eq!(s3, 409, "{b3:#}");
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_never_sees_another_tenants_execution() {
    let h = Harness::start().await;
    let (model, schema) = h.model_of_shape("polling").await;
    let (_, body) = h
        .client
        .create(
            &model,
            &Harness::input(&schema, "private"),
            &Default::default(),
        )
        .await
        .unwrap();
    let id = body["id"].as_str().unwrap();
    let other_key = h.sys.add_tenant_key("acme").await.unwrap();
    let other = executor_cli::client::Client::new(&h.sys.url, &other_key).unwrap();
    let err = other.get(id).await.unwrap_err().to_string();
    assert!(err.contains("404"), "{err}");
    let c = other.cancel(id).await.unwrap();
    assert_eq!(c["status"], 404);
    h.sys.stop().await;
}

/// The transition records are committed in the guard item (its history) and written out in
/// batches: while running, no blob per version; at the end every version is readable, in
/// order and gapless, from the batch blobs a history past 16 records spills and the tail the
/// item keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transition_records_are_kept_in_the_guard_and_written_in_batches() {
    let h = Harness::start().await;
    let (model, schema) = h.model_of_shape("polling").await;
    let (status, body) = h
        .client
        .create(
            &model,
            &Harness::input(&schema, "many polls sim:duration=6000"),
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(status == 201 || status == 202, "{body:#}");
    let id = body["id"].as_str().unwrap().to_string();
    let ports = h.sys.engine.ports();
    let prefix = executor_lifecycle::keys::transitions_prefix(&id);
    // Early on: the records are in the guard, not one blob each.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let g = ports.guards.get(&id).await.unwrap().unwrap();
    let packed = serde_json::to_string(&g).unwrap().len();
    let mut plain = serde_json::to_value(&g).unwrap();
    plain["history"] = serde_json::to_value(&g.history).unwrap();
    println!(
        "guard item at v{} with {} records held: {packed} bytes (the history as plain JSON: {})",
        g.version(),
        g.history.len(),
        plain.to_string().len()
    );
    assert!(!g.history.is_empty() && packed < plain.to_string().len());
    let blobs_early = ports.blobs.list(&prefix).await.unwrap();
    assert!(
        blobs_early.len() < g.version() as usize + 1,
        "a blob per version: {blobs_early:?} at v{}",
        g.version()
    );
    let v = h.wait(&id).await;
    assert_succeeded(&v);
    let records = h.sys.engine.transitions(&id).await.unwrap();
    let g = ports.guards.get(&id).await.unwrap().unwrap();
    assert!(
        records.len() > 16,
        "enough polls to spill: {}",
        records.len()
    );
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.version, i as u64, "gapless");
    }
    assert_eq!(records.last().unwrap().version, g.version());
    // The tail stays in the item at the end (the item is the record of a short execution);
    // what spilled on the way is in batch blobs.
    assert!(
        !g.history.is_empty() && g.history.len() < executor_lifecycle::model::HISTORY_MAX_RECORDS,
        "{} records held at the end",
        g.history.len()
    );
    let bytes = serde_json::to_vec(&records).unwrap().len();
    println!(
        "{} records, {bytes} bytes of JSON, {} per record on average",
        records.len(),
        bytes / records.len()
    );
    let blobs = ports.blobs.list(&prefix).await.unwrap();
    assert!(
        (1..=records.len().div_ceil(8)).contains(&blobs.len()),
        "{} records in {} blobs: {blobs:?}",
        records.len(),
        blobs.len()
    );
    h.sys.stop().await;
}
