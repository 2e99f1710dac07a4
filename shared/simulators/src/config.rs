//! Simulator configuration: the global knobs (latency, job duration, random fault rates, the
//! concurrency cap) and the webhook secrets. Per-request faults come from directives embedded
//! in the request instead (see [`crate::directives`]).

use serde::{Deserialize, Serialize};

/// Knobs shared by every simulated provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Extra latency added to every HTTP request, in milliseconds.
    pub latency_ms: u64,
    /// Time an async job takes from creation to its terminal status, in milliseconds,
    /// unless the request carries `sim:duration=MS`.
    pub job_duration_ms: u64,
    /// Probability (0..1) that a create call is answered with the provider's rate-limit error.
    pub rate_limit_rate: f64,
    /// Probability (0..1) that a create call is answered with the provider's server error.
    pub server_error_rate: f64,
    /// Probability (0..1) that a create call creates the job and then closes the connection
    /// without answering.
    pub drop_after_create_rate: f64,
    /// Probability (0..1) that a create call creates the job and then gets a gateway's 502.
    pub error_after_create_rate: f64,
    /// Seed of the random generator behind the rates above, for reproducible runs.
    pub seed: u64,
    /// Replicate webhook signing secret (`whsec_<base64 key>`), also served at
    /// `GET /replicate/v1/webhooks/default/secret`.
    pub replicate_webhook_secret: String,
    /// Per-provider cap on unfinished jobs (immediate providers: requests being answered);
    /// creates beyond it get the provider's rate-limit error.
    pub max_concurrent_jobs: Option<u32>,
    /// Value of the `X-Fal-Webhook-User-Id` header on fal webhooks.
    pub fal_user_id: String,
    /// Delays before each webhook redelivery after a failed attempt, in milliseconds.
    /// The number of entries is the number of retries.
    pub webhook_retry_delays_ms: Vec<u64>,
    /// Public root URL to put in generated links instead of `http://{bound address}`.
    pub public_base_url: Option<String>,
    /// Kling access key: the `iss` its JWTs must carry.
    pub kling_access_key: String,
    /// Kling secret key: the HMAC-SHA256 key of its JWTs.
    pub kling_secret_key: String,
    /// Seconds Replicate says its rate limit resets in (429 `detail` and `Retry-After`); the
    /// real API says ~30 s, tests use 1.
    pub replicate_throttle_seconds: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            job_duration_ms: 300,
            rate_limit_rate: 0.0,
            server_error_rate: 0.0,
            drop_after_create_rate: 0.0,
            error_after_create_rate: 0.0,
            seed: 1,
            replicate_webhook_secret: DEFAULT_REPLICATE_WEBHOOK_SECRET.to_owned(),
            max_concurrent_jobs: None,
            fal_user_id: "sim-user".to_owned(),
            webhook_retry_delays_ms: vec![50, 200, 500],
            public_base_url: None,
            kling_access_key: DEFAULT_KLING_ACCESS_KEY.to_owned(),
            kling_secret_key: DEFAULT_KLING_SECRET_KEY.to_owned(),
            replicate_throttle_seconds: 1,
        }
    }
}

/// Default Replicate webhook secret: `whsec_` + base64 of `executor-simulator-replicate-key!`.
pub const DEFAULT_REPLICATE_WEBHOOK_SECRET: &str =
    "whsec_ZXhlY3V0b3Itc2ltdWxhdG9yLXJlcGxpY2F0ZS1rZXkh";

/// Default Kling access key (the JWT `iss`).
pub const DEFAULT_KLING_ACCESS_KEY: &str = "sim-kling-access-key";

/// Default Kling secret key (the JWT HMAC key).
pub const DEFAULT_KLING_SECRET_KEY: &str = "sim-kling-secret-key";
