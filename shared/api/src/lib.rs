//! The execution API: one axum router, served by `executor dev` and (through lambda_http) by
//! the submit Lambda. Handlers parse, authenticate and call the lifecycle engine; they hold
//! no lifecycle logic of their own. The OpenAPI document is generated from the same handlers
//! ([`openapi`]) and served at `GET /openapi.json`.

pub mod auth;
pub mod batches;
pub mod executions;
pub mod failures;
pub mod files;
pub mod list;
pub mod models;
pub mod openapi;
pub mod problem;
pub mod usage;
pub mod view;
pub mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use executor_lifecycle::Engine;
use executor_lifecycle::InlineSlots;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;

pub use auth::{StaticTenants, TenantDirectory, hash_api_key, validate_tenant};

/// A per-tenant token bucket.
pub type TenantRateLimiter = governor::DefaultKeyedRateLimiter<String>;

/// Limits of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest accepted request body (bytes).
    pub max_body_bytes: usize,
    /// Longest `Prefer: wait=N` honoured (seconds).
    pub max_wait_seconds: u64,
    /// Immediate executions run in the request path at once; beyond that they go async (202).
    pub inline_concurrency: usize,
    /// An immediate model runs in the request path only if its submit timeout (the bound of
    /// its provider calls) is at most this many seconds; a longer one answers 202 and runs
    /// from the submit queue, its outcome by poll or webhook. 0: no bound (one process, no
    /// gateway in front). On AWS it is below API Gateway's 30 s integration limit.
    pub inline_max_seconds: u64,
    /// Authenticated requests per second allowed per tenant; 0 turns rate limiting off.
    pub rate_limit_per_second: u32,
    /// Requests a tenant may send in a burst above the steady rate.
    pub rate_limit_burst: u32,
    /// Largest file uploaded through the API (`POST /v1/files` multipart and the upload
    /// route). On Lambda it is below the 6 MB invocation payload (base64 grows bytes by a
    /// third): larger files take the presigned upload.
    pub max_upload_bytes: usize,
    /// Largest file of a presigned upload.
    pub max_file_bytes: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 1024 * 1024,
            max_wait_seconds: 60,
            inline_concurrency: 64,
            inline_max_seconds: 0,
            rate_limit_per_second: 0,
            rate_limit_burst: 100,
            max_upload_bytes: 64 * 1024 * 1024,
            max_file_bytes: 512 * 1024 * 1024,
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
    /// The slots and bound of in-request (inline) submits of immediate models.
    pub inline: InlineSlots,
    /// Per-tenant request rate limiter (None when `rate_limit_per_second` is 0).
    pub rate_limiter: Option<Arc<TenantRateLimiter>>,
}

impl ApiState {
    /// State over an engine and a tenant directory.
    pub fn new(engine: Arc<Engine>, tenants: Arc<dyn TenantDirectory>, config: ApiConfig) -> Self {
        let inline = InlineSlots::new(config.inline_concurrency, config.inline_max_seconds);
        let rate_limiter = NonZeroU32::new(config.rate_limit_per_second).map(|rate| {
            let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(rate);
            Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ))
        });
        ApiState {
            engine,
            tenants,
            config,
            inline,
            rate_limiter,
        }
    }
}

/// The router of the whole API, including `GET /openapi.json`. Every 4xx/5xx it answers,
/// the framework's own included, is `application/problem+json`.
pub fn app(state: Arc<ApiState>) -> Router {
    let limit = state.config.max_body_bytes;
    let (router, _) = openapi::router_and_doc();
    router
        .route("/openapi.json", axum::routing::get(openapi::serve))
        .fallback(problem::not_found_route)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(problem::as_problem))
        .with_state(state)
}
