//! The admission gate of create calls: applies `sim:hang`, the counted `sim:rate_limit` and
//! `sim:server_error` directives, the seeded random fault rates of [`SimConfig`] and the
//! per-provider concurrency cap, in that order. Each provider maps a [`Rejection`] to its own
//! wire error.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::SimConfig;
use crate::directives::Directives;
use crate::provider::Provider;
use crate::state::SimState;
use crate::stats::Counter;

/// Why a create call is refused before any job exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Rate limited (directive or random rate): the provider's 429 (MiniMax: code 1002).
    RateLimited,
    /// Too many unfinished jobs (`max_concurrent_jobs`): also the provider's rate limit.
    Capacity,
    /// The provider's 5xx.
    ServerError,
}

/// Per-(provider, fault, string) hit counters and the seeded generator.
#[derive(Debug)]
pub struct FaultBook {
    hits: Mutex<HashMap<(Provider, &'static str, String), u32>>,
    rng: Mutex<StdRng>,
    rate_limit_rate: f64,
    server_error_rate: f64,
}

impl FaultBook {
    /// A fresh book for `config`.
    pub fn new(config: &SimConfig) -> FaultBook {
        FaultBook {
            hits: Mutex::new(HashMap::new()),
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            rate_limit_rate: config.rate_limit_rate,
            server_error_rate: config.server_error_rate,
        }
    }

    /// Counts one more hit of `fault` for `key`; true while the count is at most `times`.
    pub fn take(&self, provider: Provider, fault: &'static str, key: &str, times: u32) -> bool {
        let mut hits = self.hits.lock();
        let n = hits.entry((provider, fault, key.to_owned())).or_default();
        *n = n.saturating_add(1);
        *n <= times
    }

    fn roll(&self, rate: f64) -> bool {
        rate > 0.0 && self.rng.lock().random::<f64>() < rate
    }
}

/// Runs the gate for one create call; rejections are counted in the stats.
pub async fn admit(
    state: &SimState,
    provider: Provider,
    directives: &Directives,
) -> Result<(), Rejection> {
    if let Some(hang) = &directives.hang {
        let hangs = match &hang.once_key {
            Some(key) => state.faults.take(provider, "hang", key, 1),
            None => true,
        };
        if hangs {
            tokio::time::sleep(Duration::from_millis(hang.ms)).await;
        }
    }
    let verdict = check(state, provider, directives);
    if verdict.is_err() {
        state.stats.bump(provider, Counter::CreateRejection);
    }
    verdict
}

fn check(state: &SimState, provider: Provider, d: &Directives) -> Result<(), Rejection> {
    let faults = &state.faults;
    if let Some(c) = &d.rate_limit {
        if faults.take(provider, "rate_limit", &c.key, c.times) {
            return Err(Rejection::RateLimited);
        }
    }
    if let Some(c) = &d.server_error {
        if faults.take(provider, "server_error", &c.key, c.times) {
            return Err(Rejection::ServerError);
        }
    }
    if faults.roll(faults.rate_limit_rate) {
        return Err(Rejection::RateLimited);
    }
    if faults.roll(faults.server_error_rate) {
        return Err(Rejection::ServerError);
    }
    if let Some(cap) = state.config.max_concurrent_jobs {
        if state.inflight(provider) >= u64::from(cap) {
            return Err(Rejection::Capacity);
        }
    }
    Ok(())
}

/// The outcome of a job just created: `sim:fail_jobs=N` fails the first N jobs of its
/// prompt, whatever else the prompt says; otherwise `outcome` as the directives chose it.
pub fn job_outcome(
    state: &SimState,
    provider: Provider,
    d: &Directives,
    outcome: crate::jobs::Outcome,
) -> crate::jobs::Outcome {
    match &d.fail_jobs {
        Some(c) if state.faults.take(provider, "fail_jobs", &c.key, c.times) => {
            crate::jobs::Outcome::Fail
        }
        _ => outcome,
    }
}

/// Marker of a connection dropped on purpose (`sim:drop_after_create`).
#[derive(Debug)]
pub struct DroppedConnection;

/// What happens to a create call after its job exists: nothing (`None`: the provider
/// answers as usual), a gateway error page in its place, or the connection closed with no
/// answer at all (this never returns: the connection's task unwinds, so hyper writes
/// nothing and the socket closes — the client's "connection closed before message
/// completed"). Applies the `sim:drop_after_create` / `sim:error_after_create` directives
/// and the seeded `drop_after_create_rate` / `error_after_create_rate` of [`SimConfig`].
pub fn after_create(
    state: &SimState,
    provider: Provider,
    directives: &Directives,
) -> Option<axum::response::Response> {
    let faults = &state.faults;
    let drop = directives
        .drop_after_create
        .as_ref()
        .is_some_and(|c| faults.take(provider, "drop_after_create", &c.key, c.times))
        || faults.roll(state.config.drop_after_create_rate);
    if drop {
        state.stats.bump(provider, Counter::DroppedAfterCreate);
        std::panic::resume_unwind(Box::new(DroppedConnection));
    }
    let status = directives.error_after_create.or_else(|| {
        faults
            .roll(state.config.error_after_create_rate)
            .then_some(502)
    })?;
    state.stats.bump(provider, Counter::ErrorAfterCreate);
    Some(gateway_error(status))
}

/// The HTML page a CDN in front of a provider answers when the origin is slow or gone.
pub fn gateway_error(status: u16) -> axum::response::Response {
    use axum::response::IntoResponse;
    let code =
        axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    let title = match status {
        504 => "504 Gateway Time-out",
        524 => "524: A timeout occurred",
        _ => "502 Bad Gateway",
    };
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
    );
    (
        code,
        [
            (axum::http::header::CONTENT_TYPE, "text/html"),
            (axum::http::header::SERVER, "cloudflare"),
        ],
        body,
    )
        .into_response()
}
