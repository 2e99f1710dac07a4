//! The Lambda handlers on the AWS backend (moto server + redis-server, started by
//! scripts/services.sh) with the provider simulators: the sample events of `events/` fed to
//! the dispatcher, and all three provider shapes end to end through the handlers driven by
//! the in-process event source mapping — with duplicated and malformed SQS records.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{event, world};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_api_events_run_through_the_handler() {
    let w = world().await;
    let (status, body) = w.api(event("api-create.json")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["outcome"], "succeeded");
    let (again, replay) = w.api(event("api-create.json")).await;
    assert_eq!(again, 200, "idempotent replay");
    assert_eq!(replay["id"], body["id"]);
    let (status, problem) = w.api(event("api-create-invalid.json")).await;
    assert_eq!(status, 400);
    assert_eq!(problem["field"], "/input/prompt");
    let (status, _) = w.api(event("api-get.json")).await;
    assert_eq!(status, 404, "unknown id");
    let (status, _) = w.api(event("api-cancel.json")).await;
    assert_eq!(status, 404);
    // The same router serves the list (the DynamoDB tenant GSI) and the OpenAPI document.
    let (status, page) = w.api(event("api-list.json")).await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert!(ids.len() <= 2, "{page}");
    let mut newest = event("api-list.json");
    newest["rawQueryString"] = json!("limit=1");
    newest["queryStringParameters"] = json!({"limit": "1"});
    let (status, page) = w.api(newest).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"][0]["id"], body["id"], "{page}");
    let (status, doc) = w.api(event("api-openapi.json")).await;
    assert_eq!(status, 200);
    assert_eq!(doc, executor_api::openapi::document_json());
    let mut unknown = event("api-get.json");
    unknown["rawPath"] = json!("/v2/nothing");
    unknown["requestContext"]["http"]["path"] = json!("/v2/nothing");
    let (status, problem) = w.api(unknown).await;
    assert_eq!(status, 404);
    assert_eq!(problem["type"], "https://executor.dev/problems/not-found");
    let (status, problem) = w.api(event("webhook-replicate.json")).await;
    assert_eq!(status, 404, "unknown execution: {problem}");
    // The sample webhook sent to a real callback execution: its signature (made with another
    // secret) is refused, and the execution keeps a note of it (DynamoDB list attribute).
    let cb = w
        .create(
            "black-forest-labs/flux-schnell",
            json!({"prompt": "forged"}),
        )
        .await;
    let mut forged = event("webhook-replicate.json");
    let path = format!("/v1/webhooks/replicate/{cb}");
    forged["rawPath"] = json!(path);
    forged["requestContext"]["http"]["path"] = json!(path);
    forged["headers"]["webhook-timestamp"] = json!(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string()
    );
    let (status, problem) = w.api(forged).await;
    assert_eq!(status, 401, "{problem}");
    let view = w.get(&cb).await;
    let rejected = view["callbacks_rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{view}");
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{view}"
    );
    for name in ["sqs-submit.json", "sqs-poll.json", "sqs-finalize.json"] {
        // Sample batches name an execution this deployment never saw (dropped) plus a
        // malformed record, which alone is reported as a batch item failure.
        let batch = event(name);
        let resp = w.app.dispatch(batch.clone()).await.unwrap();
        let failed: Vec<&str> = resp["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap())
            .collect();
        assert_eq!(
            failed,
            vec![batch["Records"][2]["messageId"].as_str().unwrap()],
            "{name}"
        );
    }
    let report = w
        .app
        .dispatch(event("schedule-reconcile.json"))
        .await
        .unwrap();
    assert!(report.get("examined").is_some(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_shapes_end_to_end_through_the_handlers_on_aws() {
    let w = world().await;
    w.start_mappings();
    let ids = vec![
        w.create("openai/gpt-image-1", json!({"prompt": "aws immediate"}))
            .await,
        w.create(
            "runway/gen4-turbo",
            json!({"promptImage": "https://example.com/a.png", "promptText": "aws polling"}),
        )
        .await,
        w.create(
            "black-forest-labs/flux-schnell",
            json!({"prompt": "aws callback"}),
        )
        .await,
        w.create(
            "black-forest-labs/flux-schnell",
            json!({"prompt": "aws lost callback sim:lose_callback"}),
        )
        .await,
        w.create("fal-ai/flux-dev", json!({"prompt": "aws fal"}))
            .await,
    ];
    for id in &ids {
        let v = w.wait_final(id).await;
        assert_eq!(v["outcome"], "succeeded", "{v}");
        assert!(
            v["cost"]["provider_usd_micros"].as_i64().unwrap() > 0,
            "{v}"
        );
    }
    let _ = w.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_fail_alone_and_duplicates_are_harmless() {
    let w = world().await;
    let id = w
        .create(
            "runway/gen4-turbo",
            json!({"promptImage": "https://example.com/a.png", "promptText": "dup"}),
        )
        .await;
    // The sample batch: the submit message twice, plus a malformed record.
    let mut batch = event("sqs-submit.json");
    for r in batch["Records"].as_array_mut().unwrap() {
        if r["body"].as_str().unwrap().starts_with('{')
            && !r["body"].as_str().unwrap().starts_with("{not")
        {
            r["body"] = json!(json!({"execution_id": id, "version": 0}).to_string());
        }
    }
    let resp = w.app.dispatch(batch.clone()).await.unwrap();
    let failed: Vec<&str> = resp["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        vec![batch["Records"][2]["messageId"].as_str().unwrap()],
        "only the malformed record fails"
    );
    // Nothing lost: the execution finishes once the mappings run.
    w.start_mappings();
    let v = w.wait_final(&id).await;
    assert_eq!(v["outcome"], "succeeded", "{v}");
    assert_eq!(v["attempts"], 1, "the duplicate did not submit twice");
    let _ = w.shutdown.send(true);
}
