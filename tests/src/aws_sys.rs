//! The AWS backend as the Lambda functions run it, on one machine: the Lambda app over
//! DynamoDB, S3 and SQS on moto server (scripts/services.sh), its HTTP router served on a
//! local port, the in-process event source mappings driving the queues, and the real
//! simulators as providers. For end-to-end tests that run the same scenario on both backends.

use executor_lambda::App;
use executor_lambda::esm::{self, MappingConfig};
use executor_lifecycle::{LifecycleConfig, QueueName};
use executor_simulators::{SimConfig, Simulators};
use std::sync::Arc;

/// The secret the AWS system signs customer webhooks with.
pub const WEBHOOK_SECRET: &str = "whsec_ZGV2LW91dGJvdW5kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM=";

/// A running AWS system.
pub struct AwsSystem {
    /// The API's base URL.
    pub url: String,
    /// An API key of [`AwsSystem::tenant`].
    pub key: String,
    /// The key's tenant.
    pub tenant: String,
    /// The app (its backend, for direct reads).
    pub app: Arc<App>,
    /// Keeps the simulators and the mappings running.
    pub keep: Box<dyn std::any::Any + Send>,
}

/// Fast lifecycle timings for tests (the customer endpoints of the suite are on this
/// machine, so webhooks may reach loopback).
pub fn fast_lifecycle(url: &str) -> LifecycleConfig {
    LifecycleConfig {
        public_base_url: url.to_string(),
        time_scale: 0.02,
        visibility_timeout_ms: 2_000,
        watchdog_margin_ms: 2_000,
        nudge_retry_ms: 100,
        delivery_retry_base_ms: 100,
        delivery_max_attempts: 3,
        submit_retry_base_ms: 100,
        webhook_targets: executor_lifecycle::netguard::OutboundPolicy::dev(),
        ..Default::default()
    }
}

/// Starts an AWS system whose resources are named `{tag}-{ulid}` and whose API key belongs to
/// `tenant`, after `tweak` adjusts the lifecycle settings.
pub async fn start(tag: &str, tenant: &str, tweak: impl FnOnce(&mut LifecycleConfig)) -> AwsSystem {
    let endpoint_url = std::env::var("EXECUTOR_TEST_AWS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".into());
    let prefix = format!("{tag}-{}", ulid::Ulid::new().to_string().to_lowercase());
    let cfg = executor_lambda::local::ensure_resources(
        &prefix,
        &endpoint_url,
        executor_lambda::local::LimiterChoice::DynamoDb,
    )
    .await
    .expect("moto server must run: scripts/services.sh");
    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let mut catalog = executor_bundles::CatalogOptions::from_env();
    for p in executor_simulators::Provider::ALL.map(|p| p.as_str()) {
        catalog
            .base_url_overrides
            .insert(p.into(), sims.base_url(p));
    }
    catalog.replicate_webhook_secret = Some(sims.replicate_webhook_secret().to_string());
    catalog.fal_public_keys = vec![sims.fal_public_key_b64url()];
    catalog.allow_missing_credentials = true;
    // Media inputs may name this machine (the API's own file URLs are on loopback here).
    catalog.media_policy = executor_lifecycle::netguard::OutboundPolicy::dev();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut lifecycle = fast_lifecycle(&url);
    tweak(&mut lifecycle);
    let app = Arc::new(
        App::build(&cfg, lifecycle, catalog, WEBHOOK_SECRET)
            .await
            .unwrap(),
    );
    let key = format!("exk_{tenant}_{prefix}");
    app.backend
        .guards
        .add_api_key(tenant, &executor_api::hash_api_key(&key))
        .await
        .unwrap();
    let router = app.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let sdk = cfg.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (shutdown, rx) = tokio::sync::watch::channel(false);
    for q in QueueName::ALL {
        let m = MappingConfig {
            queue_url: cfg.queues[&q].url.clone(),
            queue_arn: format!("arn:aws:sqs:us-east-1:000000000000:{prefix}-{}", q.as_str()),
            batch_size: 10,
            visibility_timeout: 2,
            max_concurrency: 2,
        };
        tokio::spawn(esm::run(app.clone(), sqs.clone(), m, rx.clone()));
    }
    AwsSystem {
        url,
        key,
        tenant: tenant.to_string(),
        app,
        keep: Box::new((shutdown, sims)),
    }
}
