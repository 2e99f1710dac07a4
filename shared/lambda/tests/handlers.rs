//! The Lambda handlers on the AWS backend (moto server + redis-server, started by
//! scripts/services.sh) with the provider simulators: the sample events of `events/` fed to
//! the dispatcher, and all three provider shapes end to end through the handlers driven by
//! the in-process event source mapping — with duplicated and malformed SQS records.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_aws::AwsConfig;
use executor_aws::config::QueueUrls;
use executor_bundles::CatalogOptions;
use executor_lambda::App;
use executor_lambda::esm::{self, MappingConfig};
use executor_lifecycle::{LifecycleConfig, QueueName};
use executor_simulators::{SimConfig, Simulators};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "exk_events_sample_key";

fn endpoint() -> String {
    std::env::var("EXECUTOR_TEST_AWS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5000".into())
}

fn event(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

struct World {
    app: Arc<App>,
    sqs: aws_sdk_sqs::Client,
    cfg: AwsConfig,
    _sims: Simulators,
    shutdown: tokio::sync::watch::Sender<bool>,
}

async fn world() -> World {
    let redis = std::env::var("EXECUTOR_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let tag = ulid::Ulid::new().to_string().to_lowercase();
    let mut cfg = AwsConfig {
        table: format!("lambda-{tag}"),
        bucket: format!("lambda-{tag}"),
        queues: HashMap::new(),
        outcome_queue_url: String::new(),
        redis_url: redis,
        endpoint_url: Some(endpoint()),
        region: "us-east-1".into(),
        s3_path_style: true,
    };
    let sdk = cfg.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(&cfg.bucket)
        .send()
        .await
        .expect("moto server must run: scripts/services.sh");
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    for q in QueueName::ALL {
        let url = sqs
            .create_queue()
            .queue_name(format!("{tag}-{}", q.as_str()))
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        cfg.queues.insert(q, QueueUrls { url, dlq_url: None });
    }
    cfg.outcome_queue_url = sqs
        .create_queue()
        .queue_name(format!("{tag}-out"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let ddb = executor_aws::DynamoGuardStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        cfg.table.clone(),
        Arc::new(executor_lifecycle::SystemClock),
    );
    ddb.create_table_if_missing().await.unwrap();
    ddb.add_api_key("events", &executor_api_hash(KEY))
        .await
        .unwrap();

    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let mut catalog = CatalogOptions::from_env();
    for p in ["openai", "runway", "replicate", "fal"] {
        catalog
            .base_url_overrides
            .insert(p.into(), sims.base_url(p));
    }
    catalog.replicate_webhook_secret = Some(sims.replicate_webhook_secret().to_string());
    catalog.allow_missing_credentials = true;
    // API Gateway stand-in: the router on a local port, so provider callbacks reach the webhook route.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lifecycle = LifecycleConfig {
        public_base_url: format!("http://{}", listener.local_addr().unwrap()),
        time_scale: 0.02,
        visibility_timeout_ms: 2_000,
        watchdog_margin_ms: 1_000,
        ..Default::default()
    };
    let app = Arc::new(
        App::build(
            &cfg,
            lifecycle,
            catalog,
            "whsec_ZGV2LW91dGJvdW5kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM=",
        )
        .await
        .unwrap(),
    );
    let router = app.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let (shutdown, _) = tokio::sync::watch::channel(false);
    World {
        app,
        sqs,
        cfg,
        _sims: sims,
        shutdown,
    }
}

fn executor_api_hash(key: &str) -> String {
    executor_api::hash_api_key(key)
}

impl World {
    fn start_mappings(&self) {
        for q in QueueName::ALL {
            let cfg = MappingConfig {
                queue_url: self.cfg.queues[&q].url.clone(),
                queue_arn: format!("arn:aws:sqs:us-east-1:123456789012:{}", q.as_str()),
                batch_size: 10,
                visibility_timeout: 2,
                max_concurrency: 2,
            };
            tokio::spawn(esm::run(
                self.app.clone(),
                self.sqs.clone(),
                cfg,
                self.shutdown.subscribe(),
            ));
        }
    }

    async fn api(&self, mut ev: Value) -> (u16, Value) {
        let resp = self.app.dispatch(ev.take()).await.unwrap();
        let body: Value =
            serde_json::from_str(resp["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
        (resp["statusCode"].as_u64().unwrap() as u16, body)
    }

    async fn create(&self, model: &str, input: Value) -> String {
        let mut ev = event("api-create.json");
        ev["body"] = json!(json!({"model": model, "input": input}).to_string());
        ev["headers"]["idempotency-key"] = json!(ulid::Ulid::new().to_string());
        let (status, body) = self.api(ev).await;
        assert!(status == 201 || status == 202, "{status} {body}");
        body["id"].as_str().unwrap().to_string()
    }

    async fn get(&self, id: &str) -> Value {
        let mut ev = event("api-get.json");
        let path = format!("/v1/executions/{id}");
        ev["rawPath"] = json!(path);
        ev["requestContext"]["http"]["path"] = json!(path);
        self.api(ev).await.1
    }

    async fn wait_final(&self, id: &str) -> Value {
        for _ in 0..300 {
            let v = self.get(id).await;
            if v["status"] == "finalized" || v["status"] == "finalized_degraded" {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{id} not final: {}", self.get(id).await)
    }
}

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
    let (status, problem) = w.api(event("webhook-replicate.json")).await;
    assert_eq!(status, 404, "unknown execution: {problem}");
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
