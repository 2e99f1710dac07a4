//! The bundle format: plain-data structs with `deny_unknown_fields` and a doc comment on every
//! field. The JSON Schema committed at `docs/bundle.schema.json` is generated from them (a
//! test fails when it drifts), so editors validate bundles while people write them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One model.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Model id, `owner/name` (e.g. `openai/gpt-image-1`).
    pub id: String,
    /// Provider family: the limiter scope and the callback route (`openai`, `runway`, ...).
    pub provider: String,
    /// The Rust adapter that interprets this provider's answers.
    pub adapter: String,
    /// How the provider returns results.
    pub shape: BundleShape,
    /// One line for humans.
    pub description: String,
    /// The provider's real base URL; overridable per provider (`EXECUTOR_<PROVIDER>_BASE_URL`).
    pub base_url: String,
    /// Names of the secrets the steps use (`{{ secrets.NAME }}`), read from the environment.
    #[serde(default)]
    pub credentials: Vec<String>,
    /// Time and attempt limits.
    #[serde(default)]
    pub limits: Limits,
    /// Poll cadence (polling and callback shapes).
    #[serde(default)]
    pub polling: Option<Polling>,
    /// Callback settings (callback shape).
    #[serde(default)]
    pub callback: Option<CallbackSettings>,
    /// What to do when a create call's fate is unknown.
    #[serde(default)]
    pub ambiguous_submit: AmbiguousSubmit,
    /// JSON Schema of the model input.
    pub input_schema: Value,
    /// How the cost is computed.
    pub pricing: Pricing,
    /// The steps of each action.
    pub steps: Steps,
}

/// Provider shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BundleShape {
    /// Result in the create call.
    Immediate,
    /// Job id, then polling.
    Polling,
    /// Job id, provider callback, plus slow safety polling.
    Callback,
}

/// Limits.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest an execution may take, in seconds.
    pub max_duration_seconds: u64,
    /// Submit attempts on retryable refusals.
    pub max_submit_attempts: u32,
    /// Upper bound of one submit (all its calls), in seconds.
    pub submit_timeout_seconds: u64,
    /// Inflight capacity of the provider (absent: unlimited).
    pub capacity: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_duration_seconds: 600,
            max_submit_attempts: 4,
            submit_timeout_seconds: 60,
            capacity: None,
        }
    }
}

/// Poll cadence.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Polling {
    /// First poll after submit, in milliseconds.
    pub initial_delay_ms: u64,
    /// Cap, in milliseconds.
    pub max_delay_ms: u64,
    /// Growth per poll.
    pub multiplier: f64,
}

/// Callback settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackSettings {
    /// Safety-poll interval while waiting for the callback, in seconds.
    pub safety_poll_seconds: u64,
}

/// Ambiguous-submit policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AmbiguousSubmit {
    /// Fail with `submit_ambiguous`.
    #[default]
    Fail,
    /// Submit again.
    Resubmit,
}

/// Pricing, tagged by billing unit.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "unit", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pricing {
    /// Per token (chat, GPT image models).
    PerToken {
        /// USD per million input tokens.
        input_usd_per_million: f64,
        /// USD per million output tokens.
        output_usd_per_million: f64,
    },
    /// Per output file (image, clip).
    PerOutput {
        /// USD per output.
        usd_per_output: f64,
    },
    /// Per second of provider compute (`usage.predict_time`).
    PerSecond {
        /// USD per second.
        usd_per_second: f64,
    },
    /// Provider credits per second of output (`usage.duration_seconds`).
    PerCredit {
        /// Credits per output second.
        credits_per_second: f64,
        /// USD per credit.
        usd_per_credit: f64,
    },
    /// Per character of input text (`usage.characters`).
    PerCharacter {
        /// USD per thousand characters.
        usd_per_thousand: f64,
    },
}

/// The steps of each action.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Steps {
    /// Create the job (or run it).
    pub submit: Vec<Step>,
    /// Ask for the job's state.
    #[serde(default)]
    pub poll: Vec<Step>,
    /// Cancel the job.
    #[serde(default)]
    pub cancel: Vec<Step>,
}

/// One step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Step {
    /// An HTTP call; its response is captured at `steps.<id>`.
    HttpRequest(HttpRequestStep),
    /// Build a JSON value from templates; stored at `vars.<id>`.
    TransformPayload(TransformStep),
    /// Run `then` or `else` depending on an expression.
    Conditional(ConditionalStep),
    /// End the action with an outcome and an error class.
    StopExecution(StopStep),
}

/// HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl Method {
    /// The method name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// An HTTP call.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequestStep {
    /// Step id; the response is captured at `steps.<id>` as `{status, headers, body}`.
    pub id: String,
    /// HTTP method.
    pub method: Method,
    /// URL template, e.g. `{{ base_url }}/v1/tasks/{{ job.id }}`.
    pub url: String,
    /// Header templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameter templates.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// JSON body: a value whose strings are templates. A string that is exactly one
    /// `{{ expression }}` keeps the expression's JSON type; keys rendering to null are dropped.
    #[serde(default)]
    pub json: Option<Value>,
    /// Multipart form fields (templates).
    #[serde(default)]
    pub multipart: Option<BTreeMap<String, String>>,
    /// Per-call timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    30
}

/// A JSON value built from templates.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformStep {
    /// Step id; the value is stored at `vars.<id>`.
    pub id: String,
    /// The template value (same rules as an HTTP JSON body).
    pub template: Value,
}

/// A branch.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionalStep {
    /// Expression (minijinja), e.g. `input.seed is defined`.
    #[serde(rename = "if")]
    pub condition: String,
    /// Steps when true.
    pub then: Vec<Step>,
    /// Steps when false.
    #[serde(default, rename = "else")]
    pub otherwise: Vec<Step>,
}

/// An explicit end.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopStep {
    /// Optional expression; the step only stops when it is true.
    #[serde(default, rename = "if")]
    pub condition: Option<String>,
    /// The outcome.
    pub outcome: StopOutcome,
    /// Error class (see the failure taxonomy), for `failed`.
    #[serde(default)]
    pub error_class: Option<String>,
    /// Message template.
    pub message: String,
}

/// Outcome of a stop step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopOutcome {
    /// End as failed.
    Failed,
}

/// The JSON Schema of the bundle format.
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Bundle)).unwrap_or(Value::Null)
}
