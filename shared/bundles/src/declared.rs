//! The `declared` adapter: a provider whose answers can be read by JSON pointers needs no Rust.
//! Its provider file says where the job id, the status, the outputs, the usage figures and the
//! failure are (`interpret:`), what each status value means, and how callbacks are
//! authenticated; its `errors:` table classifies failures ([`crate::rules`]).

use crate::adapters::{Adapter, CallbackKeys, call_failure, class_of_status, polled_body, short};
use crate::engine::StepRun;
use crate::format::{Bundle, ErrorFields, ErrorRule};
use crate::http::HttpResponse;
use executor_lifecycle::{
    CallbackVerdict, ErrorClass, Failure, Output, OutputKind, PollOutcome, ProviderResult,
    VerifiedCallback,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Digest as _;
use std::collections::BTreeMap;

/// How a provider's answers are read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interpret {
    /// JSON pointer to the job id in the create answer (polling and callback shapes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// JSON pointer to the job's status in a poll answer (and in a callback body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// What each status value means. Booleans match as `true` / `false`; an absent status
    /// matches `""`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statuses: BTreeMap<String, JobState>,
    /// Where the progress is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressField>,
    /// The outputs of a finished answer (the immediate answer, or the succeeded poll answer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputRule>,
    /// Usage figures for pricing: name → source. A source is a JSON pointer into the answer
    /// (`/usage/prompt_tokens`), `input.FIELD` (a number or `5s` of the input), or
    /// `chars(input.FIELD)` (the input text's length), optionally followed by ` * N` or ` / N`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub usage: BTreeMap<String, String>,
    /// Where a failed job's code and message are.
    #[serde(default, skip_serializing_if = "ErrorFields::is_empty")]
    pub failure: ErrorFields,
    /// A JSON pointer whose presence (not null) means the job failed whatever its status
    /// (a Google long-running operation is `done` with either `response` or `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_if_present: Option<String>,
    /// A 2xx answer is an error unless the value at `pointer` equals `equals` (MiniMax's
    /// `base_resp.status_code` is 0 on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok_when: Option<OkWhen>,
    /// Callbacks (callback shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<DeclaredCallback>,
}

/// What a status value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted, not running yet.
    Pending,
    /// Running.
    Running,
    /// Finished with outputs.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Canceled at the provider.
    Canceled,
}

/// A progress figure.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressField {
    /// JSON pointer to the number.
    pub pointer: String,
    /// The value meaning "done" (100 for a percentage).
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

/// A success marker inside 2xx answers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OkWhen {
    /// JSON pointer.
    pub pointer: String,
    /// The value of a successful answer.
    pub equals: Value,
}

/// The kind of an output (as in the API's outputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Image.
    Image,
    /// Video.
    Video,
    /// Audio.
    Audio,
    /// Text.
    Text,
    /// JSON.
    Json,
    /// A 3D model.
    #[serde(rename = "3d")]
    Model3d,
}

impl Kind {
    fn lifecycle(self) -> OutputKind {
        match self {
            Kind::Image => OutputKind::Image,
            Kind::Video => OutputKind::Video,
            Kind::Audio => OutputKind::Audio,
            Kind::Text => OutputKind::Text,
            Kind::Json => OutputKind::Json,
            Kind::Model3d => OutputKind::Model3d,
        }
    }
}

/// Where one output (or one per item of an array) is.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputRule {
    /// JSON pointer to an array: the rule reads each item (absent: the answer itself).
    /// Pointers below are relative to the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<String>,
    /// What the output is.
    pub kind: Kind,
    /// JSON pointer to a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// JSON pointer to base64 data (or a `data:` URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// JSON pointer to hex-encoded bytes (MiniMax speech).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// JSON pointer to text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// JSON pointer to a JSON value (tool calls, word timings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
    /// The MIME type, fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// JSON pointer to the MIME type (wins over `mime_type` when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type_at: Option<String>,
    /// JSON pointer to the width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<String>,
    /// JSON pointer to the height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<String>,
    /// JSON pointer to the duration in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<String>,
}

/// How callbacks are authenticated and read.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclaredCallback {
    /// The authentication.
    pub verify: CallbackVerify,
    /// JSON pointer to the job id in the callback body, or a list tried in order (a
    /// provider whose failure callbacks have another envelope).
    pub job_id: Pointers,
    /// Read an authenticated callback body as the job's state (its status and outputs, by
    /// the same pointers as a poll answer). False (the default): a callback is a notice, and
    /// the job is read by a poll (AssemblyAI's webhook carries only `{transcript_id, status}`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trust_body: bool,
}

/// One JSON pointer or several, tried in order.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Pointers {
    /// One pointer.
    One(String),
    /// Pointers tried in order.
    Many(Vec<String>),
}

impl Pointers {
    /// The pointers, in order.
    pub fn all(&self) -> Vec<&str> {
        match self {
            Pointers::One(p) => vec![p.as_str()],
            Pointers::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// Callback authentication.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
pub enum CallbackVerify {
    /// The provider does not sign callbacks: a callback is only a hint, and the job is read
    /// by a poll before anything is concluded.
    Unsigned,
    /// A header of our choosing, set at create (AssemblyAI's `webhook_auth_header_name` /
    /// `_value`), carries a secret; the body is trusted when it matches.
    Header {
        /// The header name.
        name: String,
        /// The credential holding the value (one of the provider's `credentials`).
        secret: String,
    },
    /// HTTP Basic credentials embedded in the callback URL
    /// (`https://user:password@host/...`), which the provider sends back as
    /// `Authorization: Basic` (Deepgram's recommended scheme). The password is
    /// `derived_secret(secrets.<key>, 'callback')` (an HMAC of the provider credential `key`,
    /// so no extra secret is configured); the create call builds the URL with
    /// `callback_url | basic_auth(user, derived_secret(secrets.<key>, 'callback'))`.
    Basic {
        /// The user name.
        user: String,
        /// The credential the password is derived from (one of the provider's `credentials`).
        key: String,
    },
}

/// The declared adapter of one bundle.
pub struct Declared {
    interpret: Interpret,
    errors: Vec<ErrorRule>,
    error_fields: ErrorFields,
    header_secret: Option<String>,
}

impl Declared {
    /// The adapter of a bundle (its `interpret`, `errors` and `error_fields`), with the
    /// bundle's secrets for callback verification.
    pub fn new(bundle: &Bundle, secrets: &BTreeMap<String, String>) -> Declared {
        let interpret = bundle.interpret.clone().unwrap_or_default();
        let header_secret = match interpret.callback.as_ref().map(|c| &c.verify) {
            Some(CallbackVerify::Header { secret, .. }) => secrets.get(secret).cloned(),
            Some(CallbackVerify::Basic { user, key }) => secrets.get(key).map(|k| {
                use base64::Engine as _;
                let password = crate::template::derived_secret(k, "callback");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                )
            }),
            _ => None,
        };
        Declared {
            interpret,
            errors: bundle.errors.clone(),
            error_fields: bundle.error_fields.clone(),
            header_secret,
        }
    }

    fn state(&self, body: &Value) -> (String, Option<JobState>) {
        let raw = match self
            .interpret
            .status
            .as_deref()
            .and_then(|p| body.pointer(p))
        {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let state = self.interpret.statuses.get(&raw).copied();
        (raw, state)
    }

    /// Reads a job answer (poll or trusted callback).
    fn interpret_job(&self, body: &Value, input: &Value) -> PollOutcome {
        let (raw, mut state) = self.state(body);
        if let Some(p) = &self.interpret.failed_if_present
            && body.pointer(p).is_some_and(|v| !v.is_null())
        {
            state = Some(JobState::Failed);
        }
        let progress =
            self.interpret.progress.as_ref().and_then(|p| {
                number(body.pointer(&p.pointer)?).map(|n| (n / p.scale).clamp(0.0, 1.0))
            });
        match state {
            Some(JobState::Pending) => PollOutcome::Pending {
                provider_status: raw,
                progress,
                started: false,
            },
            Some(JobState::Running) => PollOutcome::Pending {
                provider_status: raw,
                progress,
                started: true,
            },
            Some(JobState::Succeeded) => match self.result(body, input) {
                Ok(r) => PollOutcome::Succeeded(r),
                Err(failure) => PollOutcome::Failed {
                    failure,
                    raw: body.clone(),
                },
            },
            Some(JobState::Failed) => PollOutcome::Failed {
                failure: self.job_failure(body),
                raw: body.clone(),
            },
            Some(JobState::Canceled) => PollOutcome::Canceled { raw: body.clone() },
            None => PollOutcome::CallFailed(Failure::new(
                ErrorClass::ProviderTransient,
                format!("unknown job status {raw:?} (not in the provider file's statuses)"),
            )),
        }
    }

    fn job_failure(&self, body: &Value) -> Failure {
        let code = crate::rules::first_text(body, &self.interpret.failure.code);
        let message = crate::rules::first_text(body, &self.interpret.failure.message)
            .unwrap_or_else(|| "the provider reports the job failed".into());
        let class = crate::rules::matching(&self.errors, None, code.as_deref(), Some(&message))
            .and_then(|r| ErrorClass::parse(&r.class))
            .unwrap_or(ErrorClass::ProviderFatal);
        let mut f = Failure::new(class, short(&message));
        if let Some(c) = code {
            f = f.with_code(c);
        }
        f
    }

    fn result(&self, body: &Value, input: &Value) -> Result<ProviderResult, Failure> {
        let mut outputs = Vec::new();
        for rule in &self.interpret.outputs {
            let items: Vec<&Value> = match &rule.each {
                None => vec![body],
                Some(p) => match body.pointer(p) {
                    Some(Value::Array(a)) => a.iter().collect(),
                    Some(Value::Null) | None => vec![],
                    Some(one) => vec![one],
                },
            };
            for item in items {
                if let Some(o) = output(rule, item) {
                    outputs.push(o);
                }
            }
        }
        if outputs.is_empty() {
            return Err(Failure::new(
                ErrorClass::PartialResult,
                "the provider answered success with no output",
            )
            .with_code("empty_output"));
        }
        let mut usage = Map::new();
        for (name, source) in &self.interpret.usage {
            if let Some(n) = usage_value(source, body, input) {
                usage.insert(name.clone(), Value::from(n));
            }
        }
        Ok(ProviderResult {
            outputs,
            usage: Value::Object(usage),
            raw: strip_inline(body),
        })
    }
}

/// The raw answer kept beside the result, without multi-megabyte inline payloads (the
/// outputs hold them until ingestion moves them to the blob store).
fn strip_inline(body: &Value) -> Value {
    match body {
        Value::String(s) if s.len() > 4096 => Value::String(format!("({} bytes)", s.len())),
        Value::Array(a) => Value::Array(a.iter().map(strip_inline).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), strip_inline(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A number, or a string holding one (`"5"`, `"5s"`, `"12.5"`).
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s
            .trim()
            .trim_end_matches('s')
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite()),
        _ => None,
    }
}

fn usage_value(source: &str, body: &Value, input: &Value) -> Option<f64> {
    let (expr, scale) = match source.rsplit_once(" * ") {
        Some((e, n)) => (e.trim(), n.trim().parse::<f64>().ok()?),
        None => match source.rsplit_once(" / ") {
            Some((e, n)) => (e.trim(), 1.0 / n.trim().parse::<f64>().ok()?),
            None => (source.trim(), 1.0),
        },
    };
    let value = if let Some(field) = expr
        .strip_prefix("chars(input.")
        .and_then(|r| r.strip_suffix(')'))
    {
        input.get(field)?.as_str()?.chars().count() as f64
    } else if let Some(field) = expr.strip_prefix("input.") {
        number(input.get(field)?)?
    } else {
        number(body.pointer(expr)?)?
    };
    Some(value * scale)
}

fn text_at<'v>(item: &'v Value, pointer: &Option<String>) -> Option<&'v str> {
    item.pointer(pointer.as_deref()?)?
        .as_str()
        .filter(|s| !s.is_empty())
}

fn output(rule: &OutputRule, item: &Value) -> Option<Output> {
    let mime = text_at(item, &rule.mime_type_at)
        .map(|m| m.split(';').next().unwrap_or(m).trim().to_string())
        .or_else(|| rule.mime_type.clone());
    let dim = |p: &Option<String>| {
        p.as_deref()
            .and_then(|p| item.pointer(p))
            .and_then(number)
            .map(|n| n as u32)
    };
    let mut out = if let Some(url) = text_at(item, &rule.url) {
        let mut o = crate::adapters::output_from_url(url, rule.kind.lifecycle());
        o.kind = rule.kind.lifecycle();
        if mime.is_some() {
            o.mime_type = mime.clone();
        }
        o
    } else {
        let data = if let Some(b) = text_at(item, &rule.base64) {
            Value::String(b.to_string())
        } else if let Some(h) = text_at(item, &rule.hex) {
            use base64::Engine as _;
            Value::String(base64::engine::general_purpose::STANDARD.encode(hex::decode(h).ok()?))
        } else if let Some(t) = text_at(item, &rule.text) {
            Value::String(t.to_string())
        } else if let Some(j) = rule.json.as_deref().and_then(|p| item.pointer(p)) {
            if j.is_null() || j.as_array().is_some_and(|a| a.is_empty()) {
                return None;
            }
            j.clone()
        } else {
            return None;
        };
        Output {
            kind: rule.kind.lifecycle(),
            url: None,
            data: Some(data),
            mime_type: mime.clone(),
            width: None,
            height: None,
            duration_seconds: None,
        }
    };
    out.width = dim(&rule.width).or(out.width);
    out.height = dim(&rule.height).or(out.height);
    out.duration_seconds = rule
        .duration_seconds
        .as_deref()
        .and_then(|p| item.pointer(p))
        .and_then(number)
        .or(out.duration_seconds);
    Some(out)
}

impl Adapter for Declared {
    fn name(&self) -> &'static str {
        "declared"
    }

    fn classify_error(&self, resp: &HttpResponse) -> Failure {
        let (code, message) = crate::rules::code_and_message(&self.error_fields, &resp.body);
        let message = message.unwrap_or_else(|| match &resp.body {
            Value::String(s) => s.clone(),
            Value::Null => format!("HTTP {}", resp.status),
            other => other.to_string(),
        });
        let status = if (200..300).contains(&resp.status) {
            None
        } else {
            Some(resp.status)
        };
        let class = crate::rules::matching(&self.errors, status, code.as_deref(), Some(&message))
            .and_then(|r| ErrorClass::parse(&r.class))
            .unwrap_or_else(|| {
                if (200..300).contains(&resp.status) {
                    ErrorClass::ProviderFatal
                } else {
                    class_of_status(resp.status)
                }
            });
        let mut f = Failure::new(class, short(&message))
            .with_status(resp.status)
            .with_retry_after_ms(resp.retry_after_ms());
        if let Some(c) = code {
            f = f.with_code(c);
        }
        if class == ErrorClass::ValidationError {
            f.field = Some("/".into());
        }
        f
    }

    fn is_error_answer(&self, resp: &HttpResponse) -> bool {
        self.interpret
            .ok_when
            .as_ref()
            .is_some_and(|ok| resp.body.pointer(&ok.pointer) != Some(&ok.equals))
    }

    fn job_id(&self, resp: &HttpResponse) -> Option<String> {
        let v = resp.body.pointer(self.interpret.job_id.as_deref()?)?;
        match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn normalize_immediate(
        &self,
        resp: &HttpResponse,
        input: &Value,
    ) -> Result<ProviderResult, Failure> {
        // An immediate answer may still carry a status (a chat completion's finish reason is
        // not one; a provider that answers "failed" with HTTP 200 declares it).
        if self.interpret.status.is_some() {
            return match self.interpret_job(&resp.body, input) {
                PollOutcome::Succeeded(r) => Ok(r),
                PollOutcome::Failed { failure, .. } | PollOutcome::CallFailed(failure) => {
                    Err(failure)
                }
                other => Err(Failure::new(
                    ErrorClass::ProviderFatal,
                    format!("an immediate answer that is not finished: {other:?}"),
                )),
            };
        }
        self.result(&resp.body, input)
    }

    fn interpret_poll(&self, run: &StepRun) -> PollOutcome {
        if let Some(o) = call_failure(self, run) {
            return o;
        }
        if let Some(resp) = run.last_response()
            && self.is_error_answer(resp)
        {
            return PollOutcome::CallFailed(self.classify_error(resp));
        }
        let body = match polled_body(run) {
            Ok(b) => b,
            Err(o) => return o,
        };
        self.interpret_job(body, &run.ctx["input"])
    }

    fn verify_callback(
        &self,
        _keys: &CallbackKeys,
        headers: &[(String, String)],
        body: &[u8],
        _now_ms: i64,
    ) -> Result<VerifiedCallback, Failure> {
        let Some(cb) = &self.interpret.callback else {
            return Err(Failure::new(
                ErrorClass::CallbackFailure,
                "the provider file declares no callbacks",
            ));
        };
        let checked = match &cb.verify {
            CallbackVerify::Header { name, .. } => Some(name.as_str()),
            CallbackVerify::Basic { .. } => Some("Authorization"),
            CallbackVerify::Unsigned => None,
        };
        if let Some(name) = checked {
            let Some(expected) = &self.header_secret else {
                return Err(Failure::new(
                    ErrorClass::PipelineConfiguration,
                    format!("callback header {name}: its secret is not configured"),
                ));
            };
            let got = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str());
            let ok = got.is_some_and(|g| {
                use subtle::ConstantTimeEq as _;
                g.as_bytes().ct_eq(expected.as_bytes()).into()
            });
            if !ok {
                return Err(Failure::new(
                    ErrorClass::CallbackFailure,
                    format!("callback header {name} missing or wrong"),
                ));
            }
        }
        let payload: Value = serde_json::from_slice(body).map_err(|e| {
            Failure::new(
                ErrorClass::CallbackFailure,
                format!("callback body is not JSON: {e}"),
            )
        })?;
        if !payload.is_object() {
            return Err(Failure::new(
                ErrorClass::CallbackFailure,
                "callback body is not a JSON object",
            ));
        }
        let digest = sha2::Sha256::digest(body);
        Ok(VerifiedCallback {
            callback_id: format!("cb-{}", hex::encode(&digest[..12])),
            payload,
        })
    }

    fn callback_job_id(&self, payload: &Value) -> Option<String> {
        let pointers = &self.interpret.callback.as_ref()?.job_id;
        pointers
            .all()
            .into_iter()
            .find_map(|p| match payload.pointer(p)? {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    }

    fn interpret_callback(&self, payload: &Value) -> CallbackVerdict {
        // A body authenticated (by its header or its Basic credentials) is the job's state
        // when it names one the provider file maps (a status value, or an absent status mapped
        // from `""`, or a failure present); otherwise (a bare "done" notice) it is read by a
        // poll. An unsigned one is only ever a hint.
        let Some(cb) = &self.interpret.callback else {
            return CallbackVerdict::NeedsPoll;
        };
        if !cb.trust_body || matches!(cb.verify, CallbackVerify::Unsigned) {
            return CallbackVerdict::NeedsPoll;
        }
        let failed = self
            .interpret
            .failed_if_present
            .as_ref()
            .is_some_and(|p| payload.pointer(p).is_some_and(|v| !v.is_null()));
        match self.state(payload) {
            (_, Some(_)) => CallbackVerdict::Outcome(self.interpret_job(payload, &Value::Null)),
            _ if failed => CallbackVerdict::Outcome(self.interpret_job(payload, &Value::Null)),
            _ => CallbackVerdict::NeedsPoll,
        }
    }

    fn supports_callbacks(&self) -> bool {
        self.interpret.callback.is_some()
    }

    fn supports_immediate(&self) -> bool {
        !self.interpret.outputs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn adapter(yaml: &str) -> Declared {
        let interpret: Interpret = serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        Declared {
            interpret,
            errors: serde_yaml_ng::from_str(
                "[{code_prefix: 'SAFETY', on: job, class: content_policy}]",
            )
            .unwrap_or_else(|e| panic!("{e}")),
            error_fields: ErrorFields::default(),
            header_secret: None,
        }
    }

    const TASKS: &str = r#"
job_id: /data/task_id
status: /data/task_status
statuses: {submitted: pending, processing: running, succeed: succeeded, failed: failed}
progress: {pointer: /data/progress, scale: 100}
outputs:
  - {each: /data/task_result/videos, kind: video, url: /url, duration_seconds: /duration, mime_type: video/mp4}
usage:
  credits: /data/final_unit_deduction
  seconds: input.duration
failure: {message: [/data/task_status_msg], code: [/data/code]}
"#;

    #[test]
    fn a_task_api_reads_by_pointers() {
        let a = adapter(TASKS);
        let resp = HttpResponse {
            status: 200,
            headers: Map::new(),
            body: json!({"data": {"task_id": "t1"}}),
        };
        assert_eq!(a.job_id(&resp).as_deref(), Some("t1"));
        match a.interpret_job(
            &json!({"data": {"task_status": "processing", "progress": 40}}),
            &json!({}),
        ) {
            PollOutcome::Pending {
                started, progress, ..
            } => {
                assert!(started);
                assert_eq!(progress, Some(0.4));
            }
            other => panic!("{other:?}"),
        }
        let done = json!({"data": {"task_status": "succeed", "final_unit_deduction": "2.5",
            "task_result": {"videos": [{"url": "https://cdn/x.mp4", "duration": "5.1"}]}}});
        match a.interpret_job(&done, &json!({"duration": "5"})) {
            PollOutcome::Succeeded(r) => {
                assert_eq!(r.outputs.len(), 1);
                assert_eq!(r.outputs[0].kind, OutputKind::Video);
                assert_eq!(r.outputs[0].duration_seconds, Some(5.1));
                assert_eq!(r.usage["credits"], 2.5);
                assert_eq!(r.usage["seconds"], 5.0);
            }
            other => panic!("{other:?}"),
        }
        match a.interpret_job(
            &json!({"data": {"task_status": "failed", "task_status_msg": "nope", "code": "SAFETY_1"}}),
            &json!({}),
        ) {
            PollOutcome::Failed { failure, .. } => {
                assert_eq!(failure.class, ErrorClass::ContentPolicy);
                assert_eq!(failure.provider_code.as_deref(), Some("SAFETY_1"));
            }
            other => panic!("{other:?}"),
        }
        // A status the provider file does not know is not a success or a failure.
        assert!(matches!(
            a.interpret_job(&json!({"data": {"task_status": "weird"}}), &json!({})),
            PollOutcome::CallFailed(_)
        ));
        // Success with nothing to show is a failure, not an empty success.
        assert!(matches!(
            a.interpret_job(&json!({"data": {"task_status": "succeed"}}), &json!({})),
            PollOutcome::Failed { .. }
        ));
    }

    #[test]
    fn immediate_outputs_text_hex_and_usage_from_input() {
        let a = adapter(
            r#"
outputs:
  - {kind: text, text: /choices/0/message/content}
  - {kind: json, json: /choices/0/message/tool_calls}
  - {kind: audio, hex: /data/audio, mime_type: audio/mpeg}
usage: {input_tokens: /usage/prompt_tokens, characters: chars(input.text), minutes: /secs / 60}
"#,
        );
        let resp = HttpResponse {
            status: 200,
            headers: Map::new(),
            body: json!({"choices": [{"message": {"content": "hi", "tool_calls": []}}],
                "data": {"audio": "4944"}, "usage": {"prompt_tokens": 7}, "secs": 120}),
        };
        let r = a
            .normalize_immediate(&resp, &json!({"text": "héllo"}))
            .unwrap_or_else(|f| panic!("{f:?}"));
        assert_eq!(r.outputs.len(), 2, "empty tool_calls are no output");
        assert_eq!(r.outputs[0].data, Some(json!("hi")));
        assert_eq!(r.outputs[1].data, Some(json!("SUQ=")));
        assert_eq!(r.usage["input_tokens"], 7.0);
        assert_eq!(r.usage["characters"], 5.0);
        assert_eq!(r.usage["minutes"], 2.0);
    }

    #[test]
    fn booleans_and_absent_statuses_match_by_name() {
        let a = adapter(
            r#"
job_id: /name
status: /done
statuses: {"": running, "false": running, "true": succeeded}
outputs: [{each: /response/videos, kind: video, url: /uri}]
"#,
        );
        assert!(matches!(
            a.interpret_job(&json!({"name": "op"}), &json!({})),
            PollOutcome::Pending { started: true, .. }
        ));
        assert!(matches!(
            a.interpret_job(
                &json!({"done": true, "response": {"videos": [{"uri": "https://x/v.mp4"}]}}),
                &json!({})
            ),
            PollOutcome::Succeeded(_)
        ));
    }
}
