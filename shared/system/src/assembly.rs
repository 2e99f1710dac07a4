//! The engine's world built from a backend's storage ports, the same way on every backend:
//! the ports (through the optional fault-injection wrappers of the test suites), the media
//! store the catalog stores provider outputs in, the customer webhook signer, the engine with
//! its observer and crash injector, and the HTTP API router. `executor dev` assembles the
//! embedded backend with it ([`crate::local`]), a Lambda function the AWS backend
//! (`executor_lambda::App`); neither builds these pieces itself.

use axum::Router;
use executor_api::{ApiConfig, ApiState, TenantDirectory};
use executor_bundles::{CatalogOptions, StandardWebhookSender};
use executor_lifecycle::crash::CrashInjector;
use executor_lifecycle::netguard::OutboundPolicy;
use executor_lifecycle::{
    BlobStore, Catalog, Clock, Engine, EventSink, GuardStore, InflightLimiter, LifecycleConfig,
    Observer, Ports, Queue, WebhookSender,
};
use std::sync::Arc;

/// The storage ports a backend provides (SQLite + files, or DynamoDB + S3 + SQS).
pub struct BackendPorts {
    /// Blob store.
    pub blobs: Arc<dyn BlobStore>,
    /// Guard/index store.
    pub guards: Arc<dyn GuardStore>,
    /// Queues.
    pub queue: Arc<dyn Queue>,
    /// Inflight limiter.
    pub limiter: Arc<dyn InflightLimiter>,
    /// Downstream outcome sink.
    pub events: Arc<dyn EventSink>,
}

/// A function wrapping the queue port.
pub type QueueWrapper = Wrapper<dyn Queue>;
/// A function wrapping the blob store port.
pub type BlobWrapper = Wrapper<dyn BlobStore>;
/// A function wrapping the guard store port.
pub type GuardWrapper = Wrapper<dyn GuardStore>;
/// A function wrapping the outcome sink.
pub type EventWrapper = Wrapper<dyn EventSink>;
/// A function wrapping the customer webhook sender.
pub type WebhookWrapper = Wrapper<dyn WebhookSender>;

/// Wrappers put around the ports (fault injection in tests); a missing one leaves its port
/// as the backend gave it.
#[derive(Clone, Default)]
pub struct PortWrappers {
    /// Wraps the queue port.
    pub queue: Option<QueueWrapper>,
    /// Wraps the blob store port.
    pub blobs: Option<BlobWrapper>,
    /// Wraps the guard store port.
    pub guards: Option<GuardWrapper>,
    /// Wraps the downstream outcome sink.
    pub events: Option<EventWrapper>,
    /// Wraps (or replaces) the customer webhook sender.
    pub webhooks: Option<WebhookWrapper>,
}

/// A function wrapping a port of type `T`.
pub type Wrapper<T> = Arc<dyn Fn(Arc<T>) -> Arc<T> + Send + Sync>;

fn wrapped<T: ?Sized>(port: Arc<T>, wrap: Option<&Wrapper<T>>) -> Arc<T> {
    match wrap {
        Some(wrap) => wrap(port),
        None => port,
    }
}

/// The engine's ports: the backend's storage, the webhook sender, the clock and the catalog,
/// each through its wrapper if there is one.
pub fn ports(
    backend: BackendPorts,
    webhooks: Arc<dyn WebhookSender>,
    clock: Arc<dyn Clock>,
    catalog: Arc<dyn Catalog>,
    wrappers: &PortWrappers,
) -> Ports {
    Ports {
        blobs: wrapped(backend.blobs, wrappers.blobs.as_ref()),
        guards: wrapped(backend.guards, wrappers.guards.as_ref()),
        queue: wrapped(backend.queue, wrappers.queue.as_ref()),
        limiter: backend.limiter,
        events: wrapped(backend.events, wrappers.events.as_ref()),
        webhooks: wrapped(webhooks, wrappers.webhooks.as_ref()),
        clock,
        catalog,
    }
}

/// The customer webhook signer (Standard Webhooks, `whsec_...`), reaching only what `policy`
/// allows.
pub fn webhook_sender(
    secret: &str,
    policy: OutboundPolicy,
) -> anyhow::Result<StandardWebhookSender> {
    StandardWebhookSender::with_policy(secret, policy).map_err(anyhow::Error::msg)
}

/// Points the catalog's media store (where provider outputs given as bytes are kept and
/// served from) at the backend's blobs, with URLs under `public_base_url`.
pub fn store_media_in(
    catalog: &mut CatalogOptions,
    blobs: Arc<dyn BlobStore>,
    public_base_url: &str,
) {
    catalog.media_store = Some(Arc::new(executor_bundles::media::BlobMediaStore::new(
        blobs,
        public_base_url,
    )));
}

/// The engine over `ports`, reporting to `observer`, with an optional crash injector (the
/// chaos suites).
pub fn engine(
    ports: Ports,
    lifecycle: LifecycleConfig,
    observer: Arc<dyn Observer>,
    crash: Option<Arc<dyn CrashInjector>>,
) -> Arc<Engine> {
    let mut engine = Engine::new(ports, lifecycle).with_observer(observer);
    if let Some(c) = crash {
        engine = engine.with_crash_injector(c);
    }
    Arc::new(engine)
}

/// The HTTP API over `engine`, its keys looked up in `tenants`.
pub fn api_router(
    engine: Arc<Engine>,
    tenants: Arc<dyn TenantDirectory>,
    api: ApiConfig,
) -> Router {
    executor_api::app(Arc::new(ApiState::new(engine, tenants, api)))
}
