//! One function's world: the engine on the AWS backend, the API router, and the dispatcher
//! that routes an incoming Lambda event (SQS batch, API Gateway request, schedule) to them.

use crate::{apigw, embedded, sqs};
use anyhow::{Context, bail};
use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use axum::Router;
use executor_api::{ApiConfig, ApiState, TenantDirectory};
use executor_aws::{AwsBackend, AwsConfig, DynamoGuardStore};
use executor_bundles::{BundleCatalog, CatalogOptions, StandardWebhookSender};
use executor_lifecycle::{Engine, LifecycleConfig, Ports, SystemClock};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// API keys live in the DynamoDB table. A warm function remembers a key's tenant for
/// [`KEY_CACHE_TTL`] (one read saved per API request); a revoked key stops working within it.
pub struct DynamoTenants {
    store: Arc<DynamoGuardStore>,
    cache: std::sync::Mutex<HashMap<String, (String, Instant)>>,
}

/// How long a warm function trusts a key it has looked up.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(60);
const KEY_CACHE_ENTRIES: usize = 1024;

impl DynamoTenants {
    /// Keys looked up in `store`.
    pub fn new(store: Arc<DynamoGuardStore>) -> DynamoTenants {
        DynamoTenants {
            store,
            cache: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl TenantDirectory for DynamoTenants {
    async fn tenant_for_key_hash(&self, key_hash: &str) -> Option<String> {
        if let Ok(c) = self.cache.lock()
            && let Some((tenant, at)) = c.get(key_hash)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Some(tenant.clone());
        }
        let tenant = self
            .store
            .tenant_for_key_hash(key_hash)
            .await
            .ok()
            .flatten()?;
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= KEY_CACHE_ENTRIES {
                c.clear();
            }
            c.insert(key_hash.to_string(), (tenant.clone(), Instant::now()));
        }
        Some(tenant)
    }
}

/// The engine and router of a function.
pub struct App {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The AWS ports.
    pub backend: Arc<AwsBackend>,
    router: Router,
}

fn required(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .with_context(|| format!("missing environment variable {name}"))
}

impl App {
    /// Builds everything from the environment; fails with one line naming what is missing.
    pub async fn from_env() -> anyhow::Result<App> {
        let cfg = AwsConfig::from_env()?;
        let mut lifecycle = LifecycleConfig {
            public_base_url: required("EXECUTOR_PUBLIC_URL")?,
            ..Default::default()
        };
        if let Ok(v) = std::env::var("EXECUTOR_TIME_SCALE")
            && let Ok(x) = v.parse()
        {
            lifecycle.time_scale = x;
        }
        let secret = required("EXECUTOR_WEBHOOK_SECRET")?;
        App::build(&cfg, lifecycle, CatalogOptions::from_env(), &secret).await
    }

    /// Builds everything from explicit settings.
    pub async fn build(
        cfg: &AwsConfig,
        lifecycle: LifecycleConfig,
        catalog: CatalogOptions,
        webhook_secret: &str,
    ) -> anyhow::Result<App> {
        App::build_metered(cfg, lifecycle, catalog, webhook_secret, None).await
    }

    /// As [`App::build`], counting every AWS request in `meter` (request accounting).
    pub async fn build_metered(
        cfg: &AwsConfig,
        lifecycle: LifecycleConfig,
        catalog: CatalogOptions,
        webhook_secret: &str,
        meter: Option<executor_aws::RequestMeter>,
    ) -> anyhow::Result<App> {
        App::build_wrapped(cfg, lifecycle, catalog, webhook_secret, meter, |p| p, None).await
    }

    /// As [`App::build_metered`], with the engine's ports passed through `wrap` and an optional
    /// crash injector (the chaos suite on the AWS backend).
    pub async fn build_wrapped(
        cfg: &AwsConfig,
        lifecycle: LifecycleConfig,
        catalog: CatalogOptions,
        webhook_secret: &str,
        meter: Option<executor_aws::RequestMeter>,
        wrap: impl FnOnce(Ports) -> Ports,
        crash: Option<Arc<dyn executor_lifecycle::crash::CrashInjector>>,
    ) -> anyhow::Result<App> {
        let clock = Arc::new(SystemClock);
        let backend = Arc::new(AwsBackend::connect_metered(cfg, clock.clone(), meter).await?);
        let sources = embedded::BUNDLES
            .iter()
            .map(|(n, t)| (PathBuf::from(format!("bundles/{n}")), t.to_string()))
            .collect();
        let mut catalog = catalog;
        catalog.media_store = Some(Arc::new(executor_bundles::media::BlobMediaStore::new(
            backend.blobs.clone(),
            &lifecycle.public_base_url,
        )));
        let catalog = BundleCatalog::load_sources(sources, catalog)?;
        let ports = Ports {
            blobs: backend.blobs.clone(),
            guards: backend.guards.clone(),
            queue: backend.queue.clone(),
            limiter: backend.limiter.clone(),
            events: backend.events.clone(),
            webhooks: Arc::new(
                StandardWebhookSender::with_policy(webhook_secret, lifecycle.webhook_targets)
                    .map_err(anyhow::Error::msg)?,
            ),
            clock,
            catalog: Arc::new(catalog),
        };
        let mut engine =
            Engine::new(wrap(ports), lifecycle).with_observer(Arc::new(crate::emf::EmfObserver));
        if let Some(c) = crash {
            engine = engine.with_crash_injector(c);
        }
        let engine = Arc::new(engine);
        let state = Arc::new(ApiState::new(
            engine.clone(),
            Arc::new(DynamoTenants::new(backend.guards.clone())),
            ApiConfig::default(),
        ));
        let router = executor_api::app(state);
        Ok(App {
            engine,
            backend,
            router,
        })
    }

    /// The API router (what API Gateway invokes).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Routes one Lambda event: SQS batch → partial batch response; API Gateway request → HTTP
    /// response; scheduled event → reconcile report.
    pub async fn dispatch(&self, event: Value) -> anyhow::Result<Value> {
        if event.get("Records").is_some() {
            let batch: SqsEvent = serde_json::from_value(event).context("not an SQS event")?;
            let resp = sqs::handle_sqs_batch(&self.engine, batch).await;
            return Ok(serde_json::to_value(resp)?);
        }
        if event.get("requestContext").is_some() {
            let resp = apigw::serve(self.router.clone(), event).await?;
            return Ok(serde_json::to_value(resp)?);
        }
        if event.get("source").and_then(Value::as_str) == Some("aws.events")
            || event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
        {
            let report = self.engine.reconcile().await?;
            tracing::info!(
                examined = report.examined,
                redriven = report.redriven,
                outboxes = report.outboxes_applied,
                "reconcile"
            );
            return Ok(serde_json::to_value(report)?);
        }
        bail!("unrecognized event: expected an SQS batch, an API Gateway request or a schedule")
    }
}
