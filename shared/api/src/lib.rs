//! The execution API: one axum router, served by `executor dev` and (through lambda_http) by
//! the submit Lambda. Handlers parse, authenticate and call the lifecycle engine; they hold
//! no lifecycle logic of their own.

pub mod auth;
pub mod executions;
pub mod models;
pub mod problem;
pub mod view;
pub mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use executor_lifecycle::Engine;
use std::sync::Arc;
use tokio::sync::Semaphore;

pub use auth::{StaticTenants, TenantDirectory, hash_api_key};

/// Limits of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest accepted request body (bytes).
    pub max_body_bytes: usize,
    /// Longest `Prefer: wait=N` honoured (seconds).
    pub max_wait_seconds: u64,
    /// Immediate executions run in the request path at once; beyond that they go async (202).
    pub inline_concurrency: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 1024 * 1024,
            max_wait_seconds: 60,
            inline_concurrency: 64,
        }
    }
}

/// Shared state of the handlers.
pub struct ApiState {
    /// The lifecycle engine.
    pub engine: Arc<Engine>,
    /// API key → tenant.
    pub tenants: Arc<dyn TenantDirectory>,
    /// Limits.
    pub config: ApiConfig,
    /// Bound on in-request immediate executions.
    pub inline_permits: Arc<Semaphore>,
}

impl ApiState {
    /// State over an engine and a tenant directory.
    pub fn new(engine: Arc<Engine>, tenants: Arc<dyn TenantDirectory>, config: ApiConfig) -> Self {
        let inline_permits = Arc::new(Semaphore::new(config.inline_concurrency.max(1)));
        ApiState {
            engine,
            tenants,
            config,
            inline_permits,
        }
    }
}

/// The router of the whole API.
pub fn app(state: Arc<ApiState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/v1/executions", post(executions::create))
        .route("/v1/executions/{id}", get(executions::get_one))
        .route("/v1/executions/{id}/cancel", post(executions::cancel))
        .route("/v1/executions/{id}/events", get(executions::events))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{owner}/{name}", get(models::get_one))
        .route(
            "/v1/webhooks/{provider}/{execution_id}",
            post(webhooks::receive),
        )
        .route("/healthz", get(|| async { "ok" }))
        .fallback(problem::not_found_route)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
