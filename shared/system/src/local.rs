//! The whole system in one process on the embedded backend: SQLite + files, in-process
//! limiter, queue workers, the reconciler, the HTTP API and (in dev) the provider simulators.

use crate::assembly::{self, BackendPorts, PortWrappers};
pub use crate::assembly::{BlobWrapper, EventWrapper, GuardWrapper, QueueWrapper, WebhookWrapper};
pub use crate::dev::DEV_TENANT;
use anyhow::{Context, Result};
use async_trait::async_trait;
use executor_api::{ApiConfig, TenantDirectory, hash_api_key};
use executor_bundles::{BundleCatalog, CatalogOptions};
use executor_embedded::{EmbeddedBackend, SqliteStore};
use executor_lifecycle::crash::CrashInjector;
use executor_lifecycle::worker::{self, WorkerConfig};
use executor_lifecycle::{Clock, Engine, LifecycleConfig, Ports, QueueName, SystemClock};
use executor_simulators::{SimConfig, Simulators};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How to assemble a local system.
pub struct LocalOptions {
    /// Where the SQLite file and blobs live.
    pub data_dir: PathBuf,
    /// Where the bundles are.
    pub bundles_dir: PathBuf,
    /// API listen address (port 0: any).
    pub bind: SocketAddr,
    /// Start the provider simulators and point every provider at them.
    pub simulators: Option<SimConfig>,
    /// Lifecycle settings (its `public_base_url` is set from the bound address).
    pub lifecycle: LifecycleConfig,
    /// API limits.
    pub api: ApiConfig,
    /// Consumers per queue.
    pub worker_concurrency: usize,
    /// How often the reconciler runs (ms); 0 disables it.
    pub reconcile_every_ms: u64,
    /// Secret for signing outbound customer webhooks (`whsec_...`).
    pub webhook_secret: String,
    /// The dev tenant's API key; a random one when None.
    pub dev_key: Option<String>,
    /// Fault injection (tests).
    pub crash: Option<Arc<dyn CrashInjector>>,
    /// Clock (tests may control it).
    pub clock: Arc<dyn Clock>,
    /// Wraps the queue port (fault injection in tests).
    pub wrap_queue: Option<QueueWrapper>,
    /// Wraps the blob store port (fault injection in tests).
    pub wrap_blobs: Option<BlobWrapper>,
    /// Wraps the guard store port (fault injection in tests).
    pub wrap_guards: Option<GuardWrapper>,
    /// Wraps the downstream outcome sink (fault injection in tests).
    pub wrap_events: Option<EventWrapper>,
    /// Wraps (or replaces) the customer webhook sender (fault injection in tests).
    pub wrap_webhooks: Option<WebhookWrapper>,
    /// Sees the result of every pass of the built-in reconciler (tests count them).
    pub on_reconcile: Option<ReconcileHook>,
    /// Provider → inflight capacity (0: unlimited), overriding the bundles.
    pub capacity_overrides: HashMap<String, u32>,
    /// Outbound HTTP breaker, bulkhead and retry settings.
    pub resilience: executor_bundles::resilience::ResilienceConfig,
    /// Provider → base URL (applied unless simulators replace it).
    pub base_url_overrides: HashMap<String, String>,
    /// Start the queue consumers (off when a caller drives the queues itself, e.g. `bench`).
    pub run_workers: bool,
    /// Accept bundles whose provider credentials are not set (simulators in another process).
    pub allow_missing_credentials: bool,
    /// Provider credentials by name, instead of the process environment (tests).
    pub secrets: Option<HashMap<String, String>>,
    /// Callback verification keys (Replicate `whsec_...`, fal public keys) instead of the
    /// environment's or the simulators'.
    pub callback_keys: Option<(String, Vec<String>)>,
    /// The URL providers and customers reach this system at (default: the bound address).
    pub public_base_url: Option<String>,
}

impl LocalOptions {
    /// Applies a configuration file's settings.
    pub fn apply(&mut self, cfg: &crate::config::Config) {
        self.lifecycle = cfg.lifecycle.clone();
        self.api = (&cfg.api).into();
        self.worker_concurrency = cfg.workers.concurrency;
        self.reconcile_every_ms = cfg.workers.reconcile_every_ms;
        self.resilience = cfg.http.clone();
        for (name, p) in &cfg.providers {
            if let Some(c) = p.capacity {
                self.capacity_overrides.insert(name.clone(), c);
            }
            if let Some(u) = &p.base_url {
                self.base_url_overrides.insert(name.clone(), u.clone());
            }
        }
    }
}

/// What the built-in reconciler calls after each pass.
pub type ReconcileHook = Arc<
    dyn Fn(&Result<executor_lifecycle::engine::ReconcileReport, executor_lifecycle::EngineError>)
        + Send
        + Sync,
>;

impl LocalOptions {
    /// Development defaults: data in `data_dir`, simulators on, real time.
    pub fn dev(data_dir: PathBuf) -> LocalOptions {
        LocalOptions {
            data_dir,
            bundles_dir: default_bundles_dir(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            simulators: Some(SimConfig::default()),
            lifecycle: LifecycleConfig {
                // Development: customer webhooks may target this machine (explicitly).
                webhook_targets: executor_lifecycle::netguard::OutboundPolicy::dev(),
                ..LifecycleConfig::default()
            },
            api: ApiConfig::default(),
            worker_concurrency: 16,
            reconcile_every_ms: 5_000,
            webhook_secret: crate::dev::DEV_WEBHOOK_SECRET.to_string(),
            dev_key: None,
            crash: None,
            clock: Arc::new(SystemClock),
            wrap_queue: None,
            wrap_blobs: None,
            wrap_guards: None,
            wrap_events: None,
            wrap_webhooks: None,
            on_reconcile: None,
            capacity_overrides: HashMap::new(),
            resilience: Default::default(),
            base_url_overrides: HashMap::new(),
            run_workers: true,
            allow_missing_credentials: false,
            secrets: None,
            callback_keys: None,
            public_base_url: None,
        }
    }
}

/// `bundles/` in the working directory, or the repository's when run from elsewhere.
pub fn default_bundles_dir() -> PathBuf {
    let cwd = PathBuf::from("bundles");
    if cwd.is_dir() {
        return cwd;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bundles")
}

/// The engine's ports over an embedded backend, through the options' port wrappers.
fn ports(opts: &LocalOptions, backend: &EmbeddedBackend, catalog: BundleCatalog) -> Result<Ports> {
    let storage = BackendPorts {
        blobs: backend.blobs.clone(),
        guards: backend.store.clone(),
        queue: backend.store.clone(),
        limiter: backend.limiter.clone(),
        events: backend.store.clone(),
    };
    let wrappers = PortWrappers {
        queue: opts.wrap_queue.clone(),
        blobs: opts.wrap_blobs.clone(),
        guards: opts.wrap_guards.clone(),
        events: opts.wrap_events.clone(),
        webhooks: opts.wrap_webhooks.clone(),
    };
    let sender = assembly::webhook_sender(&opts.webhook_secret, opts.lifecycle.webhook_targets)?;
    Ok(assembly::ports(
        storage,
        Arc::new(sender),
        opts.clock.clone(),
        Arc::new(catalog),
        &wrappers,
    ))
}

/// One reconcile pass over a data directory, without serving anything: what
/// `executor reconcile` runs. Safe beside a running `executor dev` on the same directory (the
/// store is SQLite in WAL mode; every effect re-applied is idempotent, and the server's
/// workers pick up re-sent messages). Providers are not called, so their credentials need
/// not be set. Inflight leases live in the serving process: a lease release found in a
/// pending outbox is that process's to apply (its own reconciler does), or the lease expires.
pub async fn reconcile_once(
    opts: LocalOptions,
) -> Result<executor_lifecycle::engine::ReconcileReport> {
    if !opts.data_dir.join("executor.db").is_file() {
        anyhow::bail!(
            "no executor data in {} (run `executor dev --data-dir {}` first, or pass --data-dir)",
            opts.data_dir.display(),
            opts.data_dir.display()
        );
    }
    let backend = EmbeddedBackend::open(&opts.data_dir, opts.clock.clone())
        .with_context(|| format!("opening data directory {}", opts.data_dir.display()))?;
    let mut catalog_opts = CatalogOptions::from_env();
    catalog_opts
        .base_url_overrides
        .extend(opts.base_url_overrides.clone());
    catalog_opts.allow_missing_credentials = true;
    let catalog = BundleCatalog::load(&opts.bundles_dir, catalog_opts)
        .with_context(|| format!("loading bundles from {}", opts.bundles_dir.display()))?;
    let ports = ports(&opts, &backend, catalog)?;
    let engine = Engine::new(ports, opts.lifecycle.clone());
    Ok(engine.reconcile().await?)
}

/// A running local system.
pub struct LocalSystem {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The embedded store (queues, guards, outcome events).
    pub store: Arc<SqliteStore>,
    /// The in-process inflight limiter.
    pub limiter: Arc<executor_embedded::MemoryLimiter>,
    /// API base URL.
    pub url: String,
    /// A key of tenant [`DEV_TENANT`].
    pub dev_key: String,
    /// The simulators, if started.
    pub simulators: Option<Simulators>,
    /// Prometheus metrics (also served at `GET /metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

struct SqliteTenants(Arc<SqliteStore>);

#[async_trait]
impl TenantDirectory for SqliteTenants {
    async fn tenant_for_key_hash(&self, key_hash: &str) -> Option<String> {
        self.0.tenant_for_key_hash(key_hash).await.ok().flatten()
    }
}

impl LocalSystem {
    /// Assembles and starts everything.
    pub async fn start(opts: LocalOptions) -> Result<LocalSystem> {
        let simulators = match opts.simulators.clone() {
            Some(cfg) => Some(
                Simulators::start(cfg)
                    .await
                    .context("starting provider simulators")?,
            ),
            None => None,
        };
        let backend = EmbeddedBackend::open(&opts.data_dir, opts.clock.clone())
            .with_context(|| format!("opening data directory {}", opts.data_dir.display()))?;

        let mut catalog_opts = CatalogOptions::from_env();
        catalog_opts
            .base_url_overrides
            .extend(opts.base_url_overrides.clone());
        if let Some(sims) = &simulators {
            crate::dev::point_at_simulators(&mut catalog_opts, sims);
        }
        catalog_opts.allow_missing_credentials |= opts.allow_missing_credentials;
        if let Some((whsec, fal)) = &opts.callback_keys {
            catalog_opts.replicate_webhook_secret = Some(whsec.clone());
            catalog_opts.fal_public_keys = fal.clone();
        }
        if let Some(map) = &opts.secrets {
            catalog_opts.secrets = Arc::new(executor_bundles::catalog::MapSecrets(map.clone()));
            catalog_opts.allow_missing_credentials = false;
        }
        // Against real providers, a provider whose key is not set does not stop the others:
        // its models load, are listed by GET /v1/models as unavailable with the missing
        // variable, and their executions fail with pipeline_configuration naming it.
        catalog_opts.missing_credentials_fail_executions = !catalog_opts.allow_missing_credentials;
        catalog_opts.resilience = opts.resilience.clone();
        catalog_opts.media_policy = opts.lifecycle.webhook_targets;
        catalog_opts
            .capacity_overrides
            .extend(opts.capacity_overrides.clone());
        let listener = tokio::net::TcpListener::bind(opts.bind)
            .await
            .with_context(|| format!("binding {}", opts.bind))?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let mut lifecycle = opts.lifecycle.clone();
        lifecycle.public_base_url = opts.public_base_url.clone().unwrap_or_else(|| url.clone());
        assembly::store_media_in(
            &mut catalog_opts,
            backend.blobs.clone(),
            &lifecycle.public_base_url,
        );
        let catalog = BundleCatalog::load(&opts.bundles_dir, catalog_opts)
            .with_context(|| format!("loading bundles from {}", opts.bundles_dir.display()))?;
        let missing = catalog.missing_credentials();
        if !missing.is_empty() {
            let mut vars: Vec<&str> = missing.iter().map(|(_, c)| c.as_str()).collect();
            vars.sort();
            vars.dedup();
            let models: std::collections::BTreeSet<&str> =
                missing.iter().map(|(m, _)| m.as_str()).collect();
            eprintln!(
                "note: {} model(s) unavailable until these are set: {} (GET /v1/models lists them as unavailable)",
                models.len(),
                vars.join(", ")
            );
        }

        let ports = ports(&opts, &backend, catalog)?;
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let engine = assembly::engine(ports, lifecycle, metrics.clone(), opts.crash.clone());

        let dev_key = crate::dev::dev_key(opts.dev_key.clone())?;
        executor_api::validate_tenant(DEV_TENANT).map_err(anyhow::Error::msg)?;
        backend
            .store
            .add_api_key(DEV_TENANT, &hash_api_key(&dev_key))
            .await?;

        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for queue in QueueName::ALL.into_iter().filter(|_| opts.run_workers) {
            let cfg = WorkerConfig {
                queue,
                concurrency: opts.worker_concurrency,
                batch_size: 10,
                idle_wait_ms: 50,
            };
            tasks.push(tokio::spawn(worker::run(engine.clone(), cfg, rx.clone())));
        }
        if opts.reconcile_every_ms > 0 {
            let e = engine.clone();
            let hook = opts.on_reconcile.clone();
            let mut rx = rx.clone();
            let every = std::time::Duration::from_millis(opts.reconcile_every_ms);
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = rx.changed() => break,
                    }
                    let pass = e.reconcile().await;
                    if let Some(hook) = &hook {
                        hook(&pass);
                    }
                    match pass {
                        Ok(r) if r.redriven + r.outboxes_applied > 0 => {
                            tracing::info!(
                                redriven = r.redriven,
                                outboxes = r.outboxes_applied,
                                "reconciler re-drove executions"
                            )
                        }
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "reconcile failed"),
                    }
                }
            }));
        }
        let api = assembly::api_router(
            engine.clone(),
            Arc::new(SqliteTenants(backend.store.clone())),
            opts.api.clone(),
        );
        let scrape = metrics.clone();
        let app = api.merge(crate::web::routes()).route(
            "/metrics",
            axum::routing::get(move || {
                let m = scrape.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.render(),
                    )
                }
            }),
        );
        let mut rx_srv = rx.clone();
        tasks.push(tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx_srv.changed().await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "API server failed");
            }
        }));
        Ok(LocalSystem {
            engine,
            store: backend.store.clone(),
            limiter: backend.limiter.clone(),
            url,
            dev_key,
            simulators,
            metrics,
            shutdown,
            tasks,
        })
    }

    /// Adds another API key for a tenant; returns the key.
    pub async fn add_tenant_key(&self, tenant: &str) -> Result<String> {
        executor_api::validate_tenant(tenant).map_err(anyhow::Error::msg)?;
        let key = crate::dev::new_key(tenant);
        self.store.add_api_key(tenant, &hash_api_key(&key)).await?;
        Ok(key)
    }

    /// Stops workers, reconciler and server, waiting for in-flight handlers.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Environment overrides for provider base URLs, e.g. `EXECUTOR_OPENAI_BASE_URL`.
pub fn base_url_env() -> HashMap<String, String> {
    std::env::vars()
        .filter_map(|(k, v)| {
            let p = k.strip_prefix("EXECUTOR_")?.strip_suffix("_BASE_URL")?;
            Some((p.to_lowercase(), v))
        })
        .collect()
}
