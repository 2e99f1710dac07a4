//! One function's world: the engine on the AWS backend, the API router (both assembled by
//! `executor_system::assembly`, as `executor dev` assembles them on the embedded backend), and
//! the dispatcher that routes an incoming Lambda event (SQS batch, API Gateway request,
//! schedule) to them.

use crate::{apigw, embedded, sqs};
use anyhow::{Context, bail};
use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use axum::Router;
use executor_api::{ApiConfig, TenantDirectory};
use executor_aws::{AwsBackend, AwsConfig, DynamoGuardStore};
use executor_bundles::{BundleCatalog, CatalogOptions, StandardWebhookSender};
use executor_lifecycle::{Engine, LifecycleConfig, Ports, SystemClock};
use executor_system::assembly::{self, BackendPorts, PortWrappers};
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

/// Secrets from the deployment's Secrets Manager secret, then the environment.
struct LayeredSecrets(HashMap<String, String>);

impl executor_bundles::catalog::SecretSource for LayeredSecrets {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .cloned()
            .filter(|v| !v.is_empty())
            .or_else(|| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }
}

/// The catalog in use, replaced whole when the secret is rotated.
struct SwapCatalog(std::sync::RwLock<Arc<BundleCatalog>>);

impl executor_lifecycle::Catalog for SwapCatalog {
    fn get(&self, model: &str) -> Option<Arc<dyn executor_lifecycle::ModelDriver>> {
        self.0.read().ok()?.get(model)
    }
    fn list(&self) -> Vec<Arc<dyn executor_lifecycle::ModelDriver>> {
        self.0.read().map(|c| c.list()).unwrap_or_default()
    }
}

/// The customer webhook signer in use, replaced when the secret is rotated.
struct SwapSender(std::sync::RwLock<Arc<StandardWebhookSender>>);

#[async_trait]
impl executor_lifecycle::WebhookSender for SwapSender {
    async fn deliver(
        &self,
        url: &str,
        event: &executor_lifecycle::OutcomeEvent,
    ) -> Result<(), executor_lifecycle::Failure> {
        let sender = self
            .0
            .read()
            .map_err(|_| {
                executor_lifecycle::Failure::new(
                    executor_lifecycle::ErrorClass::DegradedFinalization,
                    "webhook signer unavailable",
                )
            })?
            .clone();
        sender.deliver(url, event).await
    }
}

/// What a secret rotation rebuilds.
struct Rebuild {
    sources: Vec<(PathBuf, String)>,
    catalog: CatalogOptions,
    webhook_secret_fixed: Option<String>,
    webhook_targets: executor_lifecycle::netguard::OutboundPolicy,
    catalog_in_use: Arc<SwapCatalog>,
    sender_in_use: Arc<SwapSender>,
}

/// The catalog options with the secret's values layered over the environment.
fn with_secret(
    mut opts: CatalogOptions,
    values: Option<&HashMap<String, String>>,
) -> CatalogOptions {
    if let Some(values) = values {
        opts.secrets = Arc::new(LayeredSecrets(values.clone()));
        if let Some(v) = values
            .get("REPLICATE_WEBHOOK_SECRET")
            .filter(|v| !v.is_empty())
        {
            opts.replicate_webhook_secret = Some(v.clone());
        }
    }
    opts
}

/// The customer webhook signing secret: given, else the secret's, else the environment's.
fn webhook_secret_of(
    fixed: Option<&str>,
    values: Option<&HashMap<String, String>>,
) -> anyhow::Result<String> {
    fixed
        .map(str::to_string)
        .or_else(|| values.and_then(|v| v.get("EXECUTOR_WEBHOOK_SECRET").cloned()))
        .or_else(|| std::env::var("EXECUTOR_WEBHOOK_SECRET").ok())
        .filter(|v| !v.is_empty())
        .context("EXECUTOR_WEBHOOK_SECRET is neither a key of the EXECUTOR_SECRET_ARN secret nor an environment variable")
}

/// The engine and router of a function.
pub struct App {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The AWS ports.
    pub backend: Arc<AwsBackend>,
    router: Router,
    rebuild: Rebuild,
}

fn required(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .with_context(|| format!("missing environment variable {name}"))
}

impl App {
    /// Builds everything from the environment: the resources (`EXECUTOR_TABLE`, ...), the
    /// secret (`EXECUTOR_SECRET_ARN`), and the same settings as `executor dev` — the file
    /// `EXECUTOR_CONFIG` (default `executor.toml`, optional) overridden by
    /// `EXECUTOR__SECTION__KEY` variables (docs/configuration.md). Fails with one line naming
    /// what is missing.
    pub async fn from_env() -> anyhow::Result<App> {
        let cfg = AwsConfig::from_env()?;
        let path = std::env::var("EXECUTOR_CONFIG").unwrap_or_else(|_| "executor.toml".into());
        let settings = crate::config::Config::load(std::path::Path::new(&path), false)?;
        let mut lifecycle = settings.lifecycle.clone();
        lifecycle.public_base_url = required("EXECUTOR_PUBLIC_URL")?;
        if let Ok(v) = std::env::var("EXECUTOR_TIME_SCALE")
            && let Ok(x) = v.parse()
        {
            lifecycle.time_scale = x;
        }
        let mut catalog = CatalogOptions::from_env();
        settings.apply_to_catalog(&mut catalog);
        let api = ApiConfig::from(&settings.api);
        App::build_configured(&cfg, lifecycle, catalog, api, None, None, |p| p, None).await
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
        App::build_configured(
            cfg,
            lifecycle,
            catalog,
            ApiConfig::default(),
            Some(webhook_secret),
            meter,
            wrap,
            crash,
        )
        .await
    }

    /// Everything explicit: API limits, and the webhook secret (None: from the deployment's
    /// secret or the environment).
    #[allow(clippy::too_many_arguments)]
    pub async fn build_configured(
        cfg: &AwsConfig,
        lifecycle: LifecycleConfig,
        catalog: CatalogOptions,
        api: ApiConfig,
        webhook_secret: Option<&str>,
        meter: Option<executor_aws::RequestMeter>,
        wrap: impl FnOnce(Ports) -> Ports,
        crash: Option<Arc<dyn executor_lifecycle::crash::CrashInjector>>,
    ) -> anyhow::Result<App> {
        let clock = Arc::new(SystemClock);
        let backend = Arc::new(AwsBackend::connect_metered(cfg, clock.clone(), meter).await?);
        backend
            .guards
            .set_due_bucket_ms(lifecycle.scaled(executor_aws::dynamo::DUE_BUCKET_MS));
        let sources: Vec<(PathBuf, String)> = embedded::BUNDLES
            .iter()
            .map(|(n, t)| (PathBuf::from(format!("bundles/{n}")), t.to_string()))
            .collect();
        let mut catalog = catalog;
        // One provider's missing key fails that provider's executions (pipeline_configuration,
        // naming it), not the function's start.
        catalog.missing_credentials_fail_executions = true;
        assembly::store_media_in(
            &mut catalog,
            backend.blobs.clone(),
            &lifecycle.public_base_url,
        );
        let values = backend.secrets.as_ref().map(|s| s.values().values);
        let loaded = BundleCatalog::load_sources(
            sources.clone(),
            with_secret(catalog.clone(), values.as_ref()),
        )?;
        for (model, credential) in loaded.missing_credentials() {
            tracing::error!(
                model,
                credential,
                "credential missing: this model's executions fail with pipeline_configuration until the secret (EXECUTOR_SECRET_ARN) or the environment has it"
            );
        }
        if let Some(limiter) = &backend.dynamo_limiter {
            use executor_lifecycle::Catalog as _;
            limiter.plan(
                loaded
                    .list()
                    .iter()
                    .filter_map(|m| Some((m.spec().provider.clone(), m.spec().capacity?))),
            );
        }
        let secret = webhook_secret_of(webhook_secret, values.as_ref())?;
        let sender = Arc::new(SwapSender(std::sync::RwLock::new(Arc::new(
            assembly::webhook_sender(&secret, lifecycle.webhook_targets)?,
        ))));
        let catalog_in_use = Arc::new(SwapCatalog(std::sync::RwLock::new(Arc::new(loaded))));
        let rebuild = Rebuild {
            sources,
            catalog,
            webhook_secret_fixed: webhook_secret.map(str::to_string),
            webhook_targets: lifecycle.webhook_targets,
            catalog_in_use: catalog_in_use.clone(),
            sender_in_use: sender.clone(),
        };
        let storage = BackendPorts {
            blobs: backend.blobs.clone(),
            guards: backend.guards.clone(),
            queue: backend.queue.clone(),
            limiter: backend.limiter.clone(),
            events: backend.events.clone(),
        };
        let ports = assembly::ports(
            storage,
            sender,
            clock,
            catalog_in_use,
            &PortWrappers::default(),
        );
        let engine = assembly::engine(
            wrap(ports),
            lifecycle,
            Arc::new(crate::emf::EmfObserver),
            crash,
        );
        let router = assembly::api_router(
            engine.clone(),
            Arc::new(DynamoTenants::new(backend.guards.clone())),
            api,
        );
        Ok(App {
            engine,
            backend,
            router,
            rebuild,
        })
    }

    /// Reads the deployment's secret again once the copy is older than `max_age`
    /// ([`executor_aws::secrets::REFRESH_AFTER`] in [`App::dispatch`]); when it changed, the
    /// catalog (provider credentials, Replicate's webhook secret) and the customer webhook
    /// signer are rebuilt from it. A rebuild that fails keeps the ones in use. True when the
    /// values changed.
    pub async fn refresh_secrets(&self, max_age: Duration) -> bool {
        let Some(cache) = &self.backend.secrets else {
            return false;
        };
        let Some(fresh) = cache.refresh_if_older(max_age).await else {
            return false;
        };
        let r = &self.rebuild;
        match BundleCatalog::load_sources(
            r.sources.clone(),
            with_secret(r.catalog.clone(), Some(&fresh.values)),
        ) {
            Ok(c) => {
                if let Ok(mut slot) = r.catalog_in_use.0.write() {
                    // A rotation that drops a credential keeps the catalog in use (its key
                    // still works until retired); one that adds a missing key is taken.
                    let before: std::collections::BTreeSet<_> =
                        slot.missing_credentials().into_iter().collect();
                    let lost: Vec<_> = c
                        .missing_credentials()
                        .into_iter()
                        .filter(|m| !before.contains(m))
                        .collect();
                    if lost.is_empty() {
                        *slot = Arc::new(c);
                    } else {
                        tracing::warn!(lost = ?lost, "rotated secret lacks credentials in use; keeping the catalog in use");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "rotated secret: catalog rebuild failed; keeping the one in use")
            }
        }
        match webhook_secret_of(r.webhook_secret_fixed.as_deref(), Some(&fresh.values))
            .and_then(|s| assembly::webhook_sender(&s, r.webhook_targets))
        {
            Ok(sender) => {
                if let Ok(mut slot) = r.sender_in_use.0.write() {
                    *slot = Arc::new(sender);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "rotated secret: webhook signer rebuild failed; keeping the one in use")
            }
        }
        tracing::info!("secret rotated: provider credentials and signing secrets reloaded");
        true
    }

    /// The API router (what API Gateway invokes).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Routes one Lambda event: SQS batch → partial batch response; API Gateway request → HTTP
    /// response; scheduled event → reconcile report.
    ///
    /// A response larger than Lambda's synchronous payload limit is an error, as the invocation
    /// would fail on AWS (`Function.ResponseSizeTooLarge`); an API answer that large is stored
    /// and redirected instead ([`apigw::serve`]).
    pub async fn dispatch(&self, event: Value) -> anyhow::Result<Value> {
        let resp = self.dispatch_unchecked(event).await?;
        apigw::check_response_size(serde_json::to_vec(&resp)?.len())?;
        Ok(resp)
    }

    async fn dispatch_unchecked(&self, event: Value) -> anyhow::Result<Value> {
        self.refresh_secrets(executor_aws::secrets::REFRESH_AFTER)
            .await;
        if event.get("Records").is_some() {
            let batch: SqsEvent = serde_json::from_value(event).context("not an SQS event")?;
            let queues = self.backend.queue.clone();
            let resp =
                sqs::handle_sqs_batch(&self.engine, batch, &|arn| queues.queue_for_arn(arn)).await;
            return Ok(serde_json::to_value(resp)?);
        }
        if event.get("requestContext").is_some() {
            let resp = apigw::serve(
                self.router.clone(),
                event,
                Some(self.backend.blobs.as_ref()),
            )
            .await?;
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
