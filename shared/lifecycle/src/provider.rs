//! The provider port: what the lifecycle asks of a model, whatever the provider.
//!
//! `executor-bundles` implements it from declarative bundles plus thin adapters. The lifecycle
//! owns attempts, backoff and status; a driver only makes calls and interprets answers.

use crate::model::{CallRecord, Cost, ExecutionRequest, ProviderResult, Shape};
use crate::taxonomy::Failure;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// What to do when a submit intent is found without a job id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AmbiguousPolicy {
    /// Fail with `submit_ambiguous` (never risk a duplicate paid job).
    #[default]
    Fail,
    /// Submit again (the provider deduplicates, or a duplicate is harmless).
    Resubmit,
}

/// Poll cadence: `initial`, then multiplied each poll, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PollPolicy {
    /// First poll delay after submit (ms).
    pub initial_delay_ms: u64,
    /// Cap (ms).
    pub max_delay_ms: u64,
    /// Growth factor per poll.
    pub multiplier: f64,
}

impl PollPolicy {
    /// The delay before poll number `n` (0-based).
    pub fn delay_ms(&self, n: u32) -> u64 {
        let m = self.multiplier.max(1.0).powi(n.min(64) as i32);
        let d = (self.initial_delay_ms as f64 * m).min(self.max_delay_ms as f64);
        d.max(0.0) as u64
    }
}

/// What the lifecycle needs to know about a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Model id.
    pub id: String,
    /// Provider family.
    pub provider: String,
    /// Shape.
    pub shape: Shape,
    /// One line for humans.
    pub description: String,
    /// JSON Schema of the input.
    pub input_schema: Value,
    /// Maximum duration (ms); requests may ask for less.
    pub max_duration_ms: u64,
    /// Submit attempts before giving up on retryable errors.
    pub max_submit_attempts: u32,
    /// Upper bound of one submit (all its calls), for the watchdog (ms).
    pub submit_timeout_ms: u64,
    /// Poll cadence.
    pub poll: PollPolicy,
    /// Safety-poll interval for callback providers (ms).
    pub safety_poll_ms: u64,
    /// Inflight capacity for this provider (None: unlimited).
    pub capacity: Option<u32>,
    /// Ambiguous-submit policy.
    pub ambiguous_submit: AmbiguousPolicy,
    /// Times a job that failed after it was created with a transient class is run again on
    /// this model ([`crate::fallback`]); a request's `retries` overrides it.
    #[serde(default)]
    pub job_retries: u32,
}

/// What a driver call gets to see.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The request.
    pub request: ExecutionRequest,
    /// Provider job id, once known.
    pub job_id: Option<String>,
    /// Submit attempt number (1-based).
    pub attempt: u32,
    /// URL the provider should call back.
    pub callback_url: String,
    /// Hard deadline (ms).
    pub deadline_ms: i64,
    /// This poll is the last look at the job (the deadline reached, a cancel asked for):
    /// its calls are sent even when the provider's circuit breaker is open, since they
    /// decide whether a job the provider finished is delivered.
    pub final_look: bool,
}

/// A driver answer plus the calls it made.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    /// The answer.
    pub outcome: T,
    /// Calls made, for the audit record.
    pub calls: Vec<CallRecord>,
    /// Events the model's steps published (`{event, step, data}`), recorded on the
    /// transition (`detail.events`).
    pub events: Vec<Value>,
}

/// Adds published events to a transition's detail.
pub(crate) fn note_events(detail: &mut Value, events: Vec<Value>) {
    if events.is_empty() {
        return;
    }
    if !detail.is_object() {
        *detail = Value::Object(Default::default());
    }
    detail["events"] = Value::Array(events);
}

/// Whether a failed create call might have created a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobCreation {
    /// Certainly not (the provider refused: 4xx, 429, 503 before acceptance).
    NotCreated,
    /// Unknown (timeout or connection lost after sending).
    Unknown,
}

/// The answer to submit.
#[derive(Debug, Clone)]
pub enum SubmitOutcome {
    /// The provider accepted a job.
    Created {
        /// Its id.
        job_id: String,
        /// The raw answer.
        raw: Value,
    },
    /// The provider answered with the result (immediate shape).
    Completed(ProviderResult),
    /// The provider refused or the call failed.
    Rejected {
        /// Why.
        failure: Failure,
        /// Whether a job may exist.
        creation: JobCreation,
        /// The raw error body, if any.
        raw: Value,
    },
}

/// The answer to poll (or a callback's interpretation).
#[derive(Debug, Clone)]
pub enum PollOutcome {
    /// Not done yet.
    Pending {
        /// The provider's status string.
        provider_status: String,
        /// Progress 0..1 if known.
        progress: Option<f64>,
        /// True once the provider says the job is running.
        started: bool,
    },
    /// Done with a result.
    Succeeded(ProviderResult),
    /// The job failed.
    Failed {
        /// Why.
        failure: Failure,
        /// The raw answer.
        raw: Value,
    },
    /// The job was canceled on the provider side.
    Canceled {
        /// The raw answer.
        raw: Value,
    },
    /// The status call itself failed (nothing known about the job).
    CallFailed(Failure),
}

/// A callback that passed verification.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedCallback {
    /// Deduplication id (`webhook-id`, or a hash of the body).
    pub callback_id: String,
    /// The parsed body.
    pub payload: Value,
}

/// What a stored callback means.
#[derive(Debug, Clone)]
pub enum CallbackVerdict {
    /// Trust it as the job's state.
    Outcome(PollOutcome),
    /// Don't trust it alone (unsigned provider): poll the provider to confirm.
    NeedsPoll,
}

/// What looking for a job at the provider found (an ambiguous create resolved by the bundle's
/// `lookup`).
#[derive(Debug, Clone)]
pub enum LookupOutcome {
    /// The bundle declares no lookup.
    Unsupported,
    /// This execution's job, by the reference the provider echoes.
    Found(String),
    /// The provider lists no job of this execution.
    NotFound,
    /// The lookup itself failed (nothing learned).
    Failed(Failure),
}

/// One model's behaviour.
#[async_trait]
pub trait ModelDriver: Send + Sync {
    /// The spec.
    fn spec(&self) -> &ModelSpec;
    /// What the catalogue shows of the model beyond its spec (a JSON object: `modality`,
    /// `pricing`, `available`, `missing_credentials`, `docs_url`); `null` when the driver has
    /// nothing to add.
    fn listing(&self) -> Value {
        Value::Null
    }
    /// Whether the provider looks able to take a job now (its host's circuit breaker
    /// closed). A chain skips a model that is not instead of paying a failed attempt first.
    fn healthy(&self) -> bool {
        true
    }
    /// Validates (and normalizes) the input; errors name the field.
    fn validate(&self, input: &Value) -> Result<Value, Failure>;
    /// Creates the job (or runs it, for immediate models).
    async fn submit(&self, ctx: &CallContext) -> Reply<SubmitOutcome>;
    /// Asks the provider for the job's state.
    async fn poll(&self, ctx: &CallContext) -> Reply<PollOutcome>;
    /// Asks the provider to cancel (best effort).
    async fn cancel(&self, ctx: &CallContext) -> Reply<Result<(), Failure>>;
    /// Stores what a result read from a trusted callback carries inline and is too large to
    /// travel in the execution's record (a long recording's word timings), as the poll path
    /// does for what it reads; the result as it is by default. An `Err` leaves the callback
    /// unconsumed: the message is retried.
    async fn store_outputs(
        &self,
        ctx: &CallContext,
        result: ProviderResult,
    ) -> Result<ProviderResult, Failure> {
        let _ = ctx;
        Ok(result)
    }
    /// Looks for this execution's job at the provider after an ambiguous create.
    async fn lookup(&self, ctx: &CallContext) -> Reply<LookupOutcome> {
        let _ = ctx;
        Reply {
            outcome: LookupOutcome::Unsupported,
            calls: vec![],
            events: vec![],
        }
    }
    /// Verifies a callback's signature and parses it.
    fn verify_callback(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        now_ms: i64,
    ) -> Result<VerifiedCallback, Failure>;
    /// The provider job a verified callback payload is about; `None` when it is not a job
    /// payload.
    fn callback_job_id(&self, payload: &Value) -> Option<String>;
    /// Interprets a verified callback payload.
    fn interpret_callback(&self, ctx: &CallContext, payload: &Value) -> CallbackVerdict;
    /// Computes the cost of a result.
    fn cost(&self, result: &ProviderResult) -> Cost;
    /// The expected cost of running `input` (validated), from the pricing and what the input
    /// says of the usage (outputs asked for, duration, text length, token limits). What a
    /// create reserves on the tenant's budgets. Zero by default.
    fn estimate(&self, input: &Value) -> Cost {
        let _ = input;
        Cost::default()
    }
}

/// The models this deployment serves.
pub trait Catalog: Send + Sync {
    /// A model by id.
    fn get(&self, model: &str) -> Option<Arc<dyn ModelDriver>>;
    /// All models, sorted by id.
    fn list(&self) -> Vec<Arc<dyn ModelDriver>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_backoff_grows_and_caps() {
        let p = PollPolicy {
            initial_delay_ms: 100,
            max_delay_ms: 1000,
            multiplier: 2.0,
        };
        assert_eq!(p.delay_ms(0), 100);
        assert_eq!(p.delay_ms(1), 200);
        assert_eq!(p.delay_ms(3), 800);
        assert_eq!(p.delay_ms(4), 1000);
        assert_eq!(p.delay_ms(40), 1000);
    }
}
