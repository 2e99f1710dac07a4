//! Lifecycle settings: timeouts, retry and delivery policy. Provider-specific cadence lives in
//! bundles; these are the machine's own knobs. Defaults are safe for production.

use serde::{Deserialize, Serialize};

/// Settings of the lifecycle engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Public base URL of the API, used to build provider callback URLs
    /// (`{public_base_url}/v1/webhooks/{provider}/{execution_id}`).
    pub public_base_url: String,
    /// How long a received message stays invisible while being handled (ms).
    pub visibility_timeout_ms: u64,
    /// First submit retry delay after a retryable provider refusal (ms); doubles per attempt.
    pub submit_retry_base_ms: u64,
    /// Cap of the submit retry delay (ms).
    pub submit_retry_max_ms: u64,
    /// Base wait when the provider has no free capacity (ms); jittered up to twice this.
    pub capacity_wait_ms: u64,
    /// Extra time added to a watchdog beyond the bundle's submit timeout (ms).
    pub watchdog_margin_ms: u64,
    /// Lease lifetime beyond the execution's deadline, so a crash never leaks capacity (ms).
    pub lease_margin_ms: u64,
    /// Delivery attempts of the outcome to a customer webhook before `finalized_degraded`.
    pub delivery_max_attempts: u32,
    /// First delivery retry delay (ms); doubles per attempt.
    pub delivery_retry_base_ms: u64,
    /// Delay before re-nudging an execution whose submit is still in flight (ms).
    pub nudge_retry_ms: u64,
    /// The reconciler re-drives executions whose next step is overdue by more than this (ms).
    pub reconcile_grace_ms: u64,
    /// Multiplies every bundle-declared delay (poll cadence, safety polls) and retry delay.
    /// 1.0 in production; tests and demos use less so minutes become seconds.
    pub time_scale: f64,
    /// What a customer's `webhook_url` may reach (checked at create time on a literal host,
    /// and by the delivering client on every resolved address). Private, link-local and
    /// metadata addresses never; loopback only when allowed (`executor dev` allows it).
    pub webhook_targets: crate::netguard::OutboundPolicy,
    /// Spend limits per tenant (and optionally per model): a create whose estimated cost does
    /// not fit is refused with `402` ([`crate::budget`]).
    pub budgets: Vec<crate::budget::BudgetRule>,
    /// Model aliases naming fallback chains: `"image/fast" = ["fal-ai/flux-dev",
    /// "black-forest-labs/flux-schnell"]`. A create of the alias runs the first model with the
    /// others as its fallbacks ([`crate::fallback`]); `GET /v1/models` lists them.
    pub aliases: std::collections::BTreeMap<String, Vec<crate::fallback::Target>>,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            public_base_url: "http://127.0.0.1:8080".to_string(),
            visibility_timeout_ms: 60_000,
            submit_retry_base_ms: 1_000,
            submit_retry_max_ms: 30_000,
            capacity_wait_ms: 1_000,
            watchdog_margin_ms: 15_000,
            lease_margin_ms: 60_000,
            delivery_max_attempts: 5,
            delivery_retry_base_ms: 2_000,
            nudge_retry_ms: 500,
            reconcile_grace_ms: 60_000,
            time_scale: 1.0,
            webhook_targets: crate::netguard::OutboundPolicy::default(),
            budgets: Vec::new(),
            aliases: std::collections::BTreeMap::new(),
        }
    }
}

impl LifecycleConfig {
    /// Applies `time_scale` to a delay.
    pub fn scaled(&self, ms: u64) -> u64 {
        ((ms as f64) * self.time_scale.max(0.0)).round() as u64
    }
}
