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
    /// Error statuses of the create call that the provider documents as "nothing was
    /// created". Without an entry, a 5xx or 408 answer to a create is ambiguous (a gateway
    /// may answer 502/504 after the provider created the job); 4xx other than 408 are
    /// refusals already.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_created: Vec<NotCreatedStatus>,
    /// How the `lookup` steps' answers name this execution's job, by a reference the provider
    /// echoes (e.g. the callback URL, which holds the execution id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<Lookup>,
    /// JSON Schema of the model input.
    pub input_schema: Value,
    /// How the cost is computed.
    pub pricing: Pricing,
    /// Typical usage figures for estimates (what a create reserves on a budget) where the
    /// input does not say: `audio_seconds: 600`, `outputs: 1`, `predict_time: 3`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub estimate: BTreeMap<String, f64>,
    /// The steps of each action.
    pub steps: Steps,
    /// What the model makes (listed by `GET /v1/models`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<Modality>,
    /// The provider's documentation of this model or endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<String>,
    /// The provider's own name of the model (`{{ model.name }}` in templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_model: Option<String>,
    /// The endpoint path of the create call (`{{ model.endpoint }}` in templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Constants of the model the steps read at `model.params`.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub params: Value,
    /// The input field holding the requested output duration (a number of seconds, or a
    /// string such as `5s`); adapters that cannot read the duration from the provider's answer
    /// (Runway, Luma, MiniMax) take it from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_input: Option<String>,
    /// Where the provider's error answers keep their code and message (JSON pointers, first
    /// present wins), read by the error rules.
    #[serde(default, skip_serializing_if = "ErrorFields::is_empty")]
    pub error_fields: ErrorFields,
    /// The provider's errors as data: the first matching rule gives the class (and whether
    /// nothing was created); the generated docs page shows the same table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorRule>,
    /// Where the provider documents that a job cannot be canceled (a URL or a note): a
    /// polling or callback model without cancel steps says so, or conformance fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cancel: Option<String>,
    /// How the `declared` adapter reads the provider's answers (providers that need no Rust).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpret: Option<crate::declared::Interpret>,
}

/// What a model makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Text (chat and reasoning LLMs).
    Text,
    /// Image generation.
    Image,
    /// Image editing (an image in, an image out).
    ImageEdit,
    /// Video.
    Video,
    /// Text to speech.
    Speech,
    /// Speech to text.
    Transcription,
    /// Music and sound effects.
    Audio,
    /// 3D models.
    #[serde(rename = "3d")]
    ThreeD,
}

impl Modality {
    /// The name as written in bundles and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Image => "image",
            Modality::ImageEdit => "image_edit",
            Modality::Video => "video",
            Modality::Speech => "speech",
            Modality::Transcription => "transcription",
            Modality::Audio => "audio",
            Modality::ThreeD => "3d",
        }
    }
}

/// Where error answers keep their code and message.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorFields {
    /// JSON pointers to the provider's error code (e.g. `/error/code`, `/error/type`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code: Vec<String>,
    /// JSON pointers to the provider's error message (e.g. `/error/message`, `/detail`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message: Vec<String>,
}

impl ErrorFields {
    /// No pointers declared.
    pub fn is_empty(&self) -> bool {
        self.code.is_empty() && self.message.is_empty()
    }
}

/// One documented provider error.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorRule {
    /// The HTTP status (absent: any status; a job that failed has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The provider's error code, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A prefix of the provider's error code (`SAFETY.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_prefix: Option<String>,
    /// Text the message contains (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Where the rule applies: `http` (an error answer to a call), `job` (a job that ended
    /// failed), or `any`.
    #[serde(default, skip_serializing_if = "RuleScope::is_any")]
    pub on: RuleScope,
    /// The class in the failure taxonomy (`rate_limited`, `content_policy`, ...).
    pub class: String,
    /// The provider documents that this answer to a create call created nothing (only with
    /// `status` alone): the submit may be repeated without paying twice.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_created: bool,
    /// One line for the docs page.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Where the provider documents it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Where an error rule applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleScope {
    /// Both.
    #[default]
    Any,
    /// Error answers (non-2xx, or a 2xx the provider marks as an error).
    Http,
    /// Jobs that ended failed.
    Job,
}

impl RuleScope {
    fn is_any(&self) -> bool {
        *self == RuleScope::Any
    }
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
    /// Times a job that failed after it was created with a transient class
    /// (`provider_transient`, `provider_unavailable`, `partial_result`, e.g. fal's
    /// `runner_disconnected`) runs again on this model, after a backoff (at most 3; a
    /// request's `retries` overrides it).
    #[schemars(range(max = 3))]
    pub job_retries: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_duration_seconds: 600,
            max_submit_attempts: 4,
            submit_timeout_seconds: 60,
            capacity: None,
            job_retries: 0,
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
    /// The provider has no call that reads a job (where its documentation says so): the
    /// callback is the only result. The bundle then has no poll steps, its callbacks must be
    /// authenticated and trusted (`interpret.callback.trust_body`), and an execution whose
    /// callback never comes times out at its `max_duration_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_status: Option<String>,
}

/// Which listed job is this execution's.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// Template rendering to the job id, or to nothing when none of the listed jobs is this
    /// execution's (context: the lookup steps' responses at `steps.<id>`, `callback_url`,
    /// `execution`, `input`).
    pub job_id: String,
}

/// A create answer the provider documents as a refusal.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotCreatedStatus {
    /// The HTTP status (e.g. 503).
    pub status: u16,
    /// Where the provider documents it (a URL or a document and section), shown in the
    /// bundle's docs page.
    pub source: String,
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
        /// USD per million input tokens (`usage.input_tokens`); with
        /// `image_input_usd_per_million`, per million text input tokens
        /// (`usage.input_text_tokens`).
        input_usd_per_million: f64,
        /// USD per million output tokens (`usage.output_tokens`).
        output_usd_per_million: f64,
        /// USD per million image input tokens (`usage.input_image_tokens`), for models that
        /// price image input apart from text input (GPT image models: OpenAI's
        /// `usage.input_tokens_details.image_tokens`). Absent: all input at
        /// `input_usd_per_million`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_input_usd_per_million: Option<f64>,
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
    /// Flat provider credits per output (Stability: credits per generation).
    PerOutputCredits {
        /// Credits per output.
        credits_per_output: f64,
        /// USD per credit.
        usd_per_credit: f64,
    },
    /// Per second of generated media (`usage.duration_seconds`).
    PerOutputSecond {
        /// USD per second of output.
        usd_per_second: f64,
    },
    /// Per unit of a usage figure the provider returns (credits, audio seconds, megapixels).
    PerUsage {
        /// The usage field (`usage.<field>`), e.g. `credits` or `audio_seconds`.
        field: String,
        /// USD per unit of the field.
        usd_per_unit: f64,
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
    /// Find this execution's job at the provider after an ambiguous create (a list of recent
    /// jobs, read-only calls); [`Bundle::lookup`] says which one is ours.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookup: Vec<Step>,
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
    /// Decode an image, resize it, convert it, re-encode it (within limits); stored at
    /// `vars.<id>` as `{base64, data_uri, mime_type, width, height, bytes}`.
    TransformImage(TransformImageStep),
    /// Record a progress or custom event on the execution's timeline.
    PublishEvent(PublishEventStep),
    /// Run steps once per item of an array (bounded); collected values at `vars.<id>`.
    ForEach(ForEachStep),
    /// Fetch media by URL (SSRF-safe, size-limited) and keep it inline at `vars.<id>`.
    FileHandler(FileHandlerStep),
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
    /// Multipart form fields (templates). A field whose template renders to a media value
    /// (`{base64, mime_type}`, as `file-handler` and `transform-image` produce) is sent as a
    /// file part.
    #[serde(default)]
    pub multipart: Option<BTreeMap<String, String>>,
    /// A raw binary body.
    #[serde(default)]
    pub binary: Option<BinaryBody>,
    /// Per-call timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Send the provider file's `auth` headers with this call (false: a call to another host,
    /// e.g. a signed download URL).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub auth: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn default_timeout() -> u64 {
    30
}

/// A raw request body.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BinaryBody {
    /// Template rendering to base64 (or to a media value `{base64, mime_type}`).
    pub data: String,
    /// Content type (template); defaults to the media value's `mime_type`.
    #[serde(default)]
    pub content_type: Option<String>,
}

/// Image formats `transform-image` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// PNG.
    Png,
    /// JPEG (quality from `quality`).
    Jpeg,
    /// WebP (lossless).
    Webp,
}

/// How a resize fits the box.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Keep the aspect ratio, fit inside the box.
    #[default]
    Contain,
    /// Keep the aspect ratio, fill the box and crop the overflow.
    Cover,
    /// Stretch to the box.
    Fill,
}

/// A resize box.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    /// Box width in pixels.
    pub width: u32,
    /// Box height in pixels.
    pub height: u32,
    /// How the image fits the box.
    #[serde(default)]
    pub fit: Fit,
}

/// An image transformation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformImageStep {
    /// Step id; the image is stored at `vars.<id>`.
    pub id: String,
    /// Template rendering to a data URI, plain base64, or a media value `{base64, ...}`.
    pub source: String,
    /// Resize box (absent: keep the size).
    #[serde(default)]
    pub resize: Option<Resize>,
    /// Output format (absent: PNG).
    #[serde(default)]
    pub format: Option<ImageFormat>,
    /// JPEG quality 1–100.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// Largest encoded input accepted, in bytes.
    #[serde(default = "default_max_bytes")]
    pub max_input_bytes: u64,
    /// Largest decoded input accepted, in pixels (width × height).
    #[serde(default = "default_max_pixels")]
    pub max_input_pixels: u64,
}

fn default_quality() -> u8 {
    90
}

fn default_max_bytes() -> u64 {
    20 * 1024 * 1024
}

fn default_max_pixels() -> u64 {
    40_000_000
}

/// An event on the execution's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEventStep {
    /// Step id.
    pub id: String,
    /// Event name: `progress` or a custom name.
    pub event: String,
    /// Data (a template value, same rules as an HTTP JSON body). For `progress`, a number
    /// 0..1 or `{progress, message}`.
    #[serde(default)]
    pub data: Value,
}

/// A bounded loop.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForEachStep {
    /// Step id; collected values are stored at `vars.<id>` (an array).
    pub id: String,
    /// Expression evaluating to an array, e.g. `input.images`.
    pub items: String,
    /// Name of the loop variable (also `loop_index`).
    #[serde(default = "default_item", rename = "as")]
    pub item: String,
    /// Most items allowed; more fail the action with `validation_error`.
    pub max_items: u32,
    /// Steps run per item.
    pub steps: Vec<Step>,
    /// Id of an inner step whose value (`vars.<id>`, or `steps.<id>.body`) is collected.
    #[serde(default)]
    pub collect: Option<String>,
}

fn default_item() -> String {
    "item".into()
}

/// What a file handler does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    /// Fetch the URL and keep the bytes inline (`{base64, data_uri, mime_type, bytes, url}`).
    #[default]
    Fetch,
    /// Fetch the URL (a provider output) and store the bytes in the system's blob store;
    /// `vars.<id>` is `{url, source_url, mime_type, bytes}` with a stable URL served by the
    /// API, and every output of the action whose URL was `source_url` gets the stable one.
    Rehost,
}

/// Fetching media by URL.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileHandlerStep {
    /// Step id; the file is stored at `vars.<id>`.
    pub id: String,
    /// The action.
    #[serde(default)]
    pub action: FileAction,
    /// URL template (https/http; private, loopback and metadata addresses are refused). A
    /// `data:` URI is decoded instead of fetched.
    pub url: String,
    /// Largest file accepted, in bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Accepted content-type prefixes (e.g. `image/`); empty: any.
    #[serde(default)]
    pub accept: Vec<String>,
    /// Per-fetch timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
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
