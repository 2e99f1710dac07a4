//! The world shared by the handler tests: a fresh table, bucket and queues on moto server, the
//! provider simulators, and the Lambda [`App`] (optionally with a request meter).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

pub const KEY: &str = "exk_events_sample_key";

pub fn endpoint() -> String {
    std::env::var("EXECUTOR_TEST_AWS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5000".into())
}

pub fn event(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub struct World {
    pub app: Arc<App>,
    /// An SQS client outside the meter (the event source mapping's own calls).
    pub sqs: aws_sdk_sqs::Client,
    /// A guard reader outside the meter.
    pub ddb: executor_aws::DynamoGuardStore,
    /// A DynamoDB client outside the meter (raw items, for their sizes).
    pub raw_ddb: aws_sdk_dynamodb::Client,
    pub cfg: AwsConfig,
    pub lifecycle: LifecycleConfig,
    pub sims: Simulators,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// When set, provider callbacks reaching the API Gateway stand-in go to this router (the
    /// webhook function's own app) instead of `app`'s.
    pub webhook_router: Arc<std::sync::RwLock<Option<axum::Router>>>,
}

pub async fn world() -> World {
    world_metered(None).await
}

pub async fn world_metered(meter: Option<executor_aws::RequestMeter>) -> World {
    world_with(meter, 0.02, None).await
}

/// Holds provider callbacks at the door of the webhook route until the test lets each one in,
/// so a test decides when a callback lands relative to the steps it drives (without it, the
/// simulator's `start` webhook races the submit commit).
#[derive(Clone)]
pub struct WebhookGate {
    arrived: Arc<std::sync::atomic::AtomicUsize>,
    handled: Arc<std::sync::atomic::AtomicUsize>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl WebhookGate {
    pub fn new() -> WebhookGate {
        WebhookGate {
            arrived: Arc::default(),
            handled: Arc::default(),
            permits: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }

    /// Callbacks that reached the door so far (held or let in).
    pub fn arrived(&self) -> usize {
        self.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits for the `n`-th callback to reach the door, then lets it in and waits until the
    /// route has answered it.
    pub async fn admit(&self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.arrived() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "callback {n} never arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.permits.add_permits(1);
        while self.handled.load(std::sync::atomic::Ordering::SeqCst) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "callback {n} was not answered"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn layer(
        gate: axum::extract::State<WebhookGate>,
        req: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> axum::response::Response {
        if !req.uri().path().starts_with("/v1/webhooks/") {
            return next.run(req).await;
        }
        gate.arrived
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        gate.permits.acquire().await.unwrap().forget();
        let resp = next.run(req).await;
        gate.handled
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        resp
    }
}

/// A world with its own time scale for bundle delays, and optionally a gate on callbacks.
pub async fn world_with(
    meter: Option<executor_aws::RequestMeter>,
    time_scale: f64,
    gate: Option<WebhookGate>,
) -> World {
    let redis = std::env::var("EXECUTOR_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let tag = ulid::Ulid::new().to_string().to_lowercase();
    let mut cfg = AwsConfig {
        table: format!("lambda-{tag}"),
        bucket: format!("lambda-{tag}"),
        queues: HashMap::new(),
        outcome_queue_url: String::new(),
        limiter: match std::env::var("EXECUTOR_TEST_LIMITER").as_deref() {
            Ok("redis") => executor_aws::LimiterChoice::Redis(redis),
            _ => executor_aws::LimiterChoice::DynamoDb,
        },
        secret_arn: None,
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
    let raw_ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let ddb = executor_aws::DynamoGuardStore::new(
        raw_ddb.clone(),
        cfg.table.clone(),
        Arc::new(executor_lifecycle::SystemClock),
    );
    ddb.create_table_if_missing().await.unwrap();
    ddb.add_api_key("events", &executor_api_hash(KEY))
        .await
        .unwrap();

    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let catalog = catalog_for(&sims);
    // API Gateway stand-in: the router on a local port, so provider callbacks reach the webhook route.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lifecycle = LifecycleConfig {
        public_base_url: format!("http://{}", listener.local_addr().unwrap()),
        time_scale,
        visibility_timeout_ms: 2_000,
        watchdog_margin_ms: 1_000,
        ..Default::default()
    };
    let app = Arc::new(
        App::build_metered(
            &cfg,
            lifecycle.clone(),
            catalog,
            "whsec_ZGV2LW91dGJvdW5kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM=",
            meter,
        )
        .await
        .unwrap(),
    );
    let webhook_router: Arc<std::sync::RwLock<Option<axum::Router>>> = Arc::default();
    let slot = webhook_router.clone();
    let mut router = app.router().layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let other = slot.read().ok().and_then(|s| s.clone());
            async move {
                match other {
                    Some(r) if req.uri().path().starts_with("/v1/webhooks/") => {
                        use tower::ServiceExt as _;
                        // As it arrived: without this router's matched-path extensions.
                        let (mut parts, body) = req.into_parts();
                        parts.extensions = Default::default();
                        match r
                            .oneshot(axum::extract::Request::from_parts(parts, body))
                            .await
                        {
                            Ok(resp) => resp,
                            Err(never) => match never {},
                        }
                    }
                    _ => next.run(req).await,
                }
            }
        },
    ));
    if let Some(gate) = gate {
        router = router.layer(axum::middleware::from_fn_with_state(
            gate,
            WebhookGate::layer,
        ));
    }
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let (shutdown, _) = tokio::sync::watch::channel(false);
    World {
        app,
        sqs,
        cfg,
        ddb,
        raw_ddb,
        lifecycle,
        sims,
        shutdown,
        webhook_router,
    }
}

/// Catalog options pointing every provider at the simulators.
pub fn catalog_for(sims: &Simulators) -> CatalogOptions {
    let mut catalog = CatalogOptions::from_env();
    for p in executor_simulators::Provider::ALL.map(|p| p.as_str()) {
        catalog
            .base_url_overrides
            .insert(p.into(), sims.base_url(p));
    }
    catalog.replicate_webhook_secret = Some(sims.replicate_webhook_secret().to_string());
    catalog.allow_missing_credentials = true;
    catalog
}

pub fn executor_api_hash(key: &str) -> String {
    executor_api::hash_api_key(key)
}

impl World {
    /// Runs the event source mapping of `q` into `app` (one function's app).
    pub fn start_mapping(&self, q: QueueName, app: Arc<App>) {
        let cfg = MappingConfig {
            queue_url: self.cfg.queues[&q].url.clone(),
            queue_arn: format!(
                "arn:aws:sqs:us-east-1:123456789012:{}",
                self.cfg.queues[&q]
                    .url
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
            ),
            batch_size: 10,
            visibility_timeout: 2,
            max_concurrency: 2,
        };
        tokio::spawn(esm::run(
            app,
            self.sqs.clone(),
            cfg,
            self.shutdown.subscribe(),
        ));
    }

    pub fn start_mappings(&self) {
        for q in QueueName::ALL {
            let cfg = MappingConfig {
                queue_url: self.cfg.queues[&q].url.clone(),
                queue_arn: format!(
                    "arn:aws:sqs:us-east-1:123456789012:{}",
                    self.cfg.queues[&q]
                        .url
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                ),
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

    pub async fn api(&self, mut ev: Value) -> (u16, Value) {
        let resp = self.app.dispatch(ev.take()).await.unwrap();
        let body: Value =
            serde_json::from_str(resp["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
        (resp["statusCode"].as_u64().unwrap() as u16, body)
    }

    pub async fn create(&self, model: &str, input: Value) -> String {
        let mut ev = event("api-create.json");
        ev["body"] = json!(json!({"model": model, "input": input}).to_string());
        ev["headers"]["idempotency-key"] = json!(ulid::Ulid::new().to_string());
        let (status, body) = self.api(ev).await;
        assert!(status == 201 || status == 202, "{status} {body}");
        body["id"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, id: &str) -> Value {
        let mut ev = event("api-get.json");
        let path = format!("/v1/executions/{id}");
        ev["rawPath"] = json!(path);
        ev["requestContext"]["http"]["path"] = json!(path);
        self.api(ev).await.1
    }

    pub async fn wait_final(&self, id: &str) -> Value {
        for _ in 0..300 {
            let v = self.get(id).await;
            if matches!(
                v["delivery"]["state"].as_str(),
                Some("delivered" | "degraded" | "none")
            ) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{id} not final: {}", self.get(id).await)
    }
}
