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

/// A record the lifecycle cannot handle yet (its version is not visible: `RetryLater`) comes
/// back after the delay it asked for, not after the queue's visibility timeout (six times the
/// function's timeout on AWS). Before: it stayed invisible for the whole timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_not_ready_comes_back_after_its_delay() {
    let w = world().await;
    let id = w
        .create(
            "runway/gen4-turbo",
            json!({"promptImage": "https://example.com/a.png", "promptText": "later"}),
        )
        .await;
    let url = w.cfg.queues[&executor_lifecycle::QueueName::Poll]
        .url
        .clone();
    // A message for a version the guard does not have yet.
    w.sqs
        .send_message()
        .queue_url(&url)
        .message_body(json!({"execution_id": id, "version": 7}).to_string())
        .send()
        .await
        .unwrap();
    let got = w
        .sqs
        .receive_message()
        .queue_url(&url)
        .visibility_timeout(60)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let m = &got.messages()[0];
    let name = url.rsplit('/').next().unwrap();
    let batch = json!({"Records": [{
        "messageId": m.message_id(),
        "receiptHandle": m.receipt_handle(),
        "body": m.body(),
        "attributes": {}, "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{name}"),
        "awsRegion": "us-east-1",
    }]});
    let resp = w.app.dispatch(batch).await.unwrap();
    assert_eq!(
        resp["batchItemFailures"].as_array().unwrap().len(),
        1,
        "{resp}"
    );
    let started = std::time::Instant::now();
    let again = w
        .sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.messages().len(),
        1,
        "the record is back after its 1 s delay (a 60 s visibility timeout otherwise)"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let _ = w.shutdown.send(true);
}

/// A model whose input validation panics on a marker (a stand-in for any bug a release build
/// could meet while handling one record).
struct PanickyCatalog(std::sync::Arc<dyn executor_lifecycle::Catalog>);
struct PanickyDriver(std::sync::Arc<dyn executor_lifecycle::ModelDriver>);

impl executor_lifecycle::Catalog for PanickyCatalog {
    fn get(&self, model: &str) -> Option<std::sync::Arc<dyn executor_lifecycle::ModelDriver>> {
        self.0
            .get(model)
            .map(|d| std::sync::Arc::new(PanickyDriver(d)) as _)
    }
    fn list(&self) -> Vec<std::sync::Arc<dyn executor_lifecycle::ModelDriver>> {
        self.0.list()
    }
}

#[async_trait::async_trait]
impl executor_lifecycle::ModelDriver for PanickyDriver {
    fn spec(&self) -> &executor_lifecycle::ModelSpec {
        self.0.spec()
    }
    fn validate(
        &self,
        input: &serde_json::Value,
    ) -> Result<serde_json::Value, executor_lifecycle::Failure> {
        if input.to_string().contains("explode-in-submit")
            && std::thread::current().name() != Some("api")
        {
            panic!("a bug met while handling one record");
        }
        self.0.validate(input)
    }
    async fn submit(
        &self,
        ctx: &executor_lifecycle::CallContext,
    ) -> executor_lifecycle::Reply<executor_lifecycle::SubmitOutcome> {
        self.0.submit(ctx).await
    }
    async fn poll(
        &self,
        ctx: &executor_lifecycle::CallContext,
    ) -> executor_lifecycle::Reply<executor_lifecycle::PollOutcome> {
        self.0.poll(ctx).await
    }
    async fn cancel(
        &self,
        ctx: &executor_lifecycle::CallContext,
    ) -> executor_lifecycle::Reply<Result<(), executor_lifecycle::Failure>> {
        self.0.cancel(ctx).await
    }
    fn verify_callback(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        now_ms: i64,
    ) -> Result<executor_lifecycle::VerifiedCallback, executor_lifecycle::Failure> {
        self.0.verify_callback(headers, body, now_ms)
    }
    fn callback_job_id(&self, payload: &serde_json::Value) -> Option<String> {
        self.0.callback_job_id(payload)
    }
    fn interpret_callback(
        &self,
        ctx: &executor_lifecycle::CallContext,
        payload: &serde_json::Value,
    ) -> executor_lifecycle::CallbackVerdict {
        self.0.interpret_callback(ctx, payload)
    }
    fn cost(&self, result: &executor_lifecycle::ProviderResult) -> executor_lifecycle::Cost {
        self.0.cost(result)
    }
}

/// A panic while handling one record of a batch fails that record alone: the others are
/// handled and acknowledged. Before: the panic unwound through the batch (and with the
/// release profile's `panic = "abort"` killed the process), so the whole batch came back
/// after the visibility timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_one_record_fails_only_that_record() {
    let w = world().await;
    let app = executor_lambda::App::build_wrapped(
        &w.cfg,
        w.lifecycle.clone(),
        common::catalog_for(&w.sims),
        "whsec_ZGV2LW91dGJvdW5kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM=",
        None,
        |p| executor_lifecycle::Ports {
            catalog: std::sync::Arc::new(PanickyCatalog(p.catalog.clone())),
            ..p
        },
        None,
    )
    .await
    .unwrap();
    let input =
        |text: &str| json!({"promptImage": "https://example.com/a.png", "promptText": text});
    // Both accepted through the normal app (validation at create does not panic there).
    let bad = w
        .create("runway/gen4-turbo", input("explode-in-submit"))
        .await;
    let good = w.create("runway/gen4-turbo", input("fine")).await;
    let mut batch = event("sqs-submit.json");
    let records = batch["Records"].as_array_mut().unwrap();
    records.truncate(2);
    records[0]["body"] = json!(json!({"execution_id": bad, "version": 0}).to_string());
    records[1]["body"] = json!(json!({"execution_id": good, "version": 0}).to_string());
    let bad_msg = records[0]["messageId"].as_str().unwrap().to_string();
    let resp = app.dispatch(batch).await.unwrap();
    let failed: Vec<&str> = resp["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec![bad_msg.as_str()], "{resp}");
    let v = w.get(&good).await;
    assert_ne!(v["status"], "queued", "the good record was handled: {v}");
    let _ = w.shutdown.send(true);
}

/// The functions take provider credentials and signing secrets from the deployment's Secrets
/// Manager secret (`EXECUTOR_SECRET_ARN`), not from plaintext environment variables: a
/// function builds with nothing but the secret, a secret missing a provider's credential
/// fails the start naming it, and a rotation is picked up by the next event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_read_their_secrets_from_secrets_manager() {
    let w = world().await;
    let sdk = w.cfg.sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let mut values = serde_json::Map::new();
    for k in [
        "OPENAI_API_KEY",
        "RUNWAYML_API_SECRET",
        "REPLICATE_API_TOKEN",
        "FAL_KEY",
        "STABILITY_API_KEY",
        "ELEVENLABS_API_KEY",
        "LUMAAI_API_KEY",
        "MINIMAX_API_KEY",
    ] {
        values.insert(k.into(), json!(format!("from-secret-{k}")));
    }
    values.insert(
        "EXECUTOR_WEBHOOK_SECRET".into(),
        json!("whsec_ZGV2LW91dGJvdW5kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM="),
    );
    values.insert(
        "REPLICATE_WEBHOOK_SECRET".into(),
        json!(w.sims.replicate_webhook_secret()),
    );
    let full = serde_json::Value::Object(values.clone()).to_string();
    values.remove("FAL_KEY");
    let partial = serde_json::Value::Object(values).to_string();
    let mut arns = Vec::new();
    for text in [&full, &partial] {
        let arn = sm
            .create_secret()
            .name(format!("executor-{}", ulid::Ulid::new()))
            .secret_string(text.as_str())
            .send()
            .await
            .unwrap()
            .arn()
            .unwrap()
            .to_string();
        arns.push(arn);
    }
    let build = |arn: &str| {
        let mut cfg = w.cfg.clone();
        cfg.secret_arn = Some(arn.to_string());
        let mut catalog = common::catalog_for(&w.sims);
        catalog.allow_missing_credentials = false;
        catalog.replicate_webhook_secret = None;
        let lifecycle = w.lifecycle.clone();
        async move {
            executor_lambda::App::build_configured(
                &cfg,
                lifecycle,
                catalog,
                executor_api::ApiConfig::default(),
                None,
                None,
                |p| p,
                None,
            )
            .await
        }
    };
    // Without FAL_KEY the function starts (before: its start failed, `secret FAL_KEY is not
    // set`, and with it every provider); fal's executions fail with pipeline_configuration
    // naming the key, without a call to fal, and the other providers work.
    let partial_app = std::sync::Arc::new(build(&arns[1]).await.unwrap());
    for q in executor_lifecycle::QueueName::ALL {
        w.start_mapping(q, partial_app.clone());
    }
    let fal_creates = w.sims.stats().provider("fal").creates;
    let run = |model: &'static str, input: serde_json::Value| {
        let app = partial_app.clone();
        async move {
            let mut ev = event("api-create.json");
            ev["body"] = json!(json!({"model": model, "input": input}).to_string());
            ev["headers"]["idempotency-key"] = json!(ulid::Ulid::new().to_string());
            let resp = app.dispatch(ev).await.unwrap();
            let body: serde_json::Value =
                serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
            let id = body["id"].as_str().unwrap().to_string();
            for _ in 0..300 {
                let mut ev = event("api-get.json");
                let path = format!("/v1/executions/{id}");
                ev["rawPath"] = json!(path);
                ev["requestContext"]["http"]["path"] = json!(path);
                let resp = app.dispatch(ev).await.unwrap();
                let v: serde_json::Value =
                    serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
                if matches!(
                    v["delivery"]["state"].as_str(),
                    Some("delivered" | "degraded" | "none")
                ) {
                    return v;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("{id} did not finish")
        }
    };
    let fal = run("fal-ai/flux-dev", json!({"prompt": "no key"})).await;
    assert_eq!(fal["outcome"], "failed", "{fal}");
    assert_eq!(fal["error"]["class"], "pipeline_configuration", "{fal}");
    assert_eq!(fal["error"]["fault"], "platform", "{fal}");
    assert!(
        fal["error"]["detail"].as_str().unwrap().contains("FAL_KEY"),
        "the failure names the credential: {fal}"
    );
    assert_eq!(
        w.sims.stats().provider("fal").creates,
        fal_creates,
        "fal was not called"
    );
    let openai = run("openai/gpt-image-1", json!({"prompt": "has a key"})).await;
    assert_eq!(openai["outcome"], "succeeded", "{openai}");
    let app = build(&arns[0]).await.unwrap();
    assert!(
        !app.refresh_secrets(std::time::Duration::ZERO).await,
        "unchanged"
    );
    let mut rotated: serde_json::Value = serde_json::from_str(&full).unwrap();
    rotated["OPENAI_API_KEY"] = json!("rotated");
    sm.put_secret_value()
        .secret_id(&arns[0])
        .secret_string(rotated.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        app.refresh_secrets(std::time::Duration::ZERO).await,
        "rotation seen"
    );
    // Still serving after the rebuild.
    let (status, body) = {
        let resp = app.dispatch(event("api-openapi.json")).await.unwrap();
        (resp["statusCode"].as_u64().unwrap(), resp["body"].clone())
    };
    assert_eq!(status, 200, "{body}");
    let _ = w.shutdown.send(true);
}

/// On AWS the media route answers with a redirect to a short-lived presigned S3 URL: the
/// bytes (a real-size image here, megabytes) never pass through Lambda, whose response is 6 MB
/// at most. Before: the route streamed the bytes through the function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_on_aws_is_a_redirect_to_a_presigned_url() {
    let w = world().await;
    w.start_mappings();
    let id = w
        .create(
            "openai/gpt-image-1",
            json!({"prompt": "a full-size lighthouse"}),
        )
        .await;
    let v = w.wait_final(&id).await;
    assert_eq!(v["outcome"], "succeeded", "{v}");
    let url = v["outputs"][0]["url"].as_str().unwrap().to_string();
    let path = url
        .split_once("/v1/media/")
        .map(|(_, p)| format!("/v1/media/{p}"))
        .unwrap();
    let mut ev = event("api-get.json");
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["path"] = json!(path);
    ev["headers"]
        .as_object_mut()
        .unwrap()
        .remove("authorization");
    let resp = w.app.dispatch(ev).await.unwrap();
    assert_eq!(resp["statusCode"], 307, "{resp}");
    let location = resp["headers"]["location"].as_str().unwrap().to_string();
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let got = reqwest::get(&location).await.unwrap();
    assert_eq!(got.status(), 200);
    let bytes = got.bytes().await.unwrap();
    assert!(bytes.len() > 1_000_000, "{} bytes", bytes.len());
    assert_eq!(&bytes[1..4], b"PNG");
    // A name that is not there: 404, not a redirect to S3's error.
    let mut ev = event("api-get.json");
    let missing = format!("/v1/media/{id}/{}.png", "0".repeat(64));
    ev["rawPath"] = json!(missing);
    ev["requestContext"]["http"]["path"] = json!(missing);
    let resp = w.app.dispatch(ev).await.unwrap();
    assert_eq!(resp["statusCode"], 404, "{resp}");
    let _ = w.shutdown.send(true);
}

/// API Gateway and Lambda refuse requests they cannot carry before the function runs: a body
/// over API Gateway's 10 MB payload, and an event over Lambda's 6 MB (here a 7 MB body, within
/// API Gateway's limit), both `413 {"message":"Request Entity Too Large"}`. Below them the
/// router's own limit (`api.max_body_bytes`, 1 MiB) answers with a problem. Before, the
/// adapter served any size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_requests_are_refused_as_api_gateway_and_lambda_refuse_them() {
    let w = world().await;
    let with_body = |n: usize| {
        let mut ev = event("api-create.json");
        ev["body"] = json!(format!(
            "{{\"model\":\"openai/gpt-image-1\",\"input\":{{\"prompt\":\"{}\"}}}}",
            "x".repeat(n)
        ));
        ev
    };
    for size in [11 * 1024 * 1024, 7 * 1024 * 1024] {
        let resp = w.app.dispatch(with_body(size)).await.unwrap();
        assert_eq!(resp["statusCode"], 413, "{size}");
        assert_eq!(
            resp["body"], r#"{"message":"Request Entity Too Large"}"#,
            "{size}"
        );
    }
    let resp = w.app.dispatch(with_body(2 * 1024 * 1024)).await.unwrap();
    assert_eq!(resp["statusCode"], 413);
    assert_eq!(
        resp["headers"]["content-type"], "application/problem+json",
        "the router's own limit: {resp}"
    );
    let _ = w.shutdown.send(true);
}

/// A response too large for Lambda (6 MB) fails the invocation, as on AWS (where API Gateway
/// then answers 500): `serve` returns an error for an error response that large, and for a
/// success when no store can take it; with the S3 store a success is stored under
/// `responses/` and answered `303` to a presigned URL that serves the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_too_large_for_lambda_fails_or_is_redirected_to_s3() {
    use executor_lambda::apigw;
    let w = world().await;
    let big = "y".repeat(7 * 1024 * 1024);
    let router = |status: u16| {
        let body = big.clone();
        axum::Router::new().route(
            "/v1/executions/{id}",
            axum::routing::get(move || async move {
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    format!("\"{body}\""),
                )
            }),
        )
    };
    let e = apigw::serve(router(200), event("api-get.json"), None)
        .await
        .expect_err("no store: the invocation fails");
    assert!(e.to_string().contains("ResponseSizeTooLarge"), "{e}");
    let e = apigw::serve(
        router(500),
        event("api-get.json"),
        Some(w.app.backend.blobs.as_ref()),
    )
    .await
    .expect_err("an error response is never stored");
    assert!(e.to_string().contains("ResponseSizeTooLarge"), "{e}");
    let resp = apigw::serve(
        router(200),
        event("api-get.json"),
        Some(w.app.backend.blobs.as_ref()),
    )
    .await
    .unwrap();
    assert_eq!(resp.status_code, 303);
    let location = resp.headers["location"].to_str().unwrap().to_string();
    assert!(location.contains("/responses/"), "{location}");
    // S3 answers with the content type the URL names (moto ignores the override).
    assert!(
        location.contains("response-content-type=application%2Fjson"),
        "{location}"
    );
    let got = reqwest::get(&location).await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.text().await.unwrap(), format!("\"{big}\""));
    let _ = w.shutdown.send(true);
}

/// Real-size media never makes an API answer large: a four-image OpenAI generation (≈ 6.5 MB
/// of PNGs in `b64_json`) is answered with the outputs by URL, and its raw provider answer
/// keeps placeholders for the images, so both are a few hundred bytes through the Lambda
/// adapter (whose dispatch fails on anything over 6 MB). Answers that could still be large
/// (a provider's raw answer with `data:` URIs) are stored and redirected, as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_image_generation_answers_within_lambdas_response_limit() {
    let w = world().await;
    w.start_mappings();
    let id = w
        .create(
            "openai/gpt-image-1",
            json!({"prompt": "four lighthouses", "n": 4}),
        )
        .await;
    let v = w.wait_final(&id).await;
    assert_eq!(v["outcome"], "succeeded", "{v}");
    assert_eq!(v["outputs"].as_array().unwrap().len(), 4, "{v}");
    for path in [
        format!("/v1/executions/{id}"),
        format!("/v1/executions/{id}/raw"),
    ] {
        let mut ev = event("api-get.json");
        ev["rawPath"] = json!(path);
        ev["requestContext"]["http"]["path"] = json!(path);
        let resp = w.app.dispatch(ev).await.unwrap();
        assert_eq!(resp["statusCode"], 200, "{path}: {}", resp["body"]);
        let size = resp.to_string().len();
        assert!(size < 64 * 1024, "{path}: {size} bytes");
    }
    let _ = w.shutdown.send(true);
}

/// The rehost path on the AWS backend at a real video's size: a Runway execution's output (a
/// 5 s 1280x720 MP4 of ≈ 3.75 MB, served by URL like Runway's CDN) is fetched with the media
/// client and stored in S3 by the media store, as a bundle's `rehost` step does, then served
/// by the media route as a presigned redirect, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_size_video_is_rehosted_into_s3() {
    use executor_bundles::media::{BlobMediaStore, MediaClient, MediaStore as _};
    let w = world().await;
    w.start_mappings();
    let id = w
        .create(
            "runway/gen4-turbo",
            json!({"promptImage": "https://example.com/f.png", "promptText": "waves"}),
        )
        .await;
    let v = w.wait_final(&id).await;
    assert_eq!(v["outcome"], "succeeded", "{v}");
    let source = v["outputs"][0]["url"].as_str().unwrap().to_string();
    let media = MediaClient::new(executor_lifecycle::netguard::OutboundPolicy::dev()).unwrap();
    let (mime, bytes) = media
        .fetch_bytes(
            &source,
            100 * 1024 * 1024,
            &["video/".to_string()],
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(mime, "video/mp4");
    assert!(bytes.len() > 3_000_000, "{} bytes", bytes.len());
    assert_eq!(&bytes[4..8], b"ftyp");
    let store = BlobMediaStore::new(w.app.backend.blobs.clone(), &w.lifecycle.public_base_url);
    let stable = store.put(&id, bytes.clone(), &mime).await.unwrap();
    let path = stable
        .split_once("/v1/media/")
        .map(|(_, p)| format!("/v1/media/{p}"))
        .unwrap();
    let mut ev = event("api-get.json");
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["path"] = json!(path);
    let resp = w.app.dispatch(ev).await.unwrap();
    assert_eq!(resp["statusCode"], 307, "{resp}");
    let got = reqwest::get(resp["headers"]["location"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.len(), bytes.len());
    assert!(got == bytes, "the same bytes");
    let _ = w.shutdown.send(true);
}

/// An upload through API Gateway and Lambda as they carry it: a multipart body arrives base64
/// encoded, so a 4 MiB file (the template's `api.max_upload_bytes`) fits Lambda's 6 MB event
/// and is stored, while a 4.6 MiB one is refused before the function runs — which is why
/// larger files take the presigned S3 upload (docs/api.md, "Uploads").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_fits_lambda_up_to_the_templates_limit() {
    use base64::Engine as _;
    let w = world().await;
    let upload = |n: usize| {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.resize(n, 0x5a);
        let boundary = "executorboundary7MA4YWxkTrZu0gW";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"frame.png\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&png);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut ev = event("api-create.json");
        ev["routeKey"] = json!("POST /v1/files");
        ev["rawPath"] = json!("/v1/files");
        ev["requestContext"]["http"]["path"] = json!("/v1/files");
        ev["requestContext"]["routeKey"] = json!("POST /v1/files");
        ev["headers"]["content-type"] = json!(format!("multipart/form-data; boundary={boundary}"));
        ev["headers"]
            .as_object_mut()
            .unwrap()
            .remove("idempotency-key");
        ev["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&body));
        ev["isBase64Encoded"] = json!(true);
        ev
    };
    let resp = w.app.dispatch(upload(4 * 1024 * 1024)).await.unwrap();
    assert_eq!(
        resp["statusCode"],
        201,
        "{}",
        &resp.to_string()[..500.min(resp.to_string().len())]
    );
    let file: serde_json::Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
    assert_eq!(file["size_bytes"], 4 * 1024 * 1024);
    assert_eq!(file["content_type"], "image/png");
    let resp = w.app.dispatch(upload(4_823_450)).await.unwrap();
    assert_eq!(resp["statusCode"], 413);
    assert_eq!(resp["body"], r#"{"message":"Request Entity Too Large"}"#);
    let _ = w.shutdown.send(true);
}
