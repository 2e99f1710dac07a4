//! Adapters: what a provider family can't declare, behind five hooks — classify errors,
//! extract job ids, normalize results, validate callbacks, and (through usage figures)
//! compute cost. The lifecycle decides policy from the classes they return.

pub mod elevenlabs;
pub mod fal;
pub mod luma;
pub mod minimax;
pub mod openai;
pub mod replicate;
pub mod runway;
pub mod stability;

use crate::engine::StepRun;
use crate::http::HttpResponse;
use executor_lifecycle::{
    CallbackVerdict, ErrorClass, Failure, Output, OutputKind, PollOutcome, ProviderResult,
    VerifiedCallback,
};
use serde_json::Value;
use std::sync::Arc;

/// Secrets adapters need to verify callbacks.
#[derive(Debug, Clone, Default)]
pub struct CallbackKeys {
    /// Replicate's Standard Webhooks secret (`whsec_...`).
    pub replicate_webhook_secret: Option<String>,
    /// fal's Ed25519 public keys (base64url).
    pub fal_public_keys: Vec<String>,
}

/// The hooks.
pub trait Adapter: Send + Sync {
    /// The adapter's name (as bundles refer to it).
    fn name(&self) -> &'static str;
    /// What the provider's answers mean in the failure taxonomy, for the generated docs:
    /// (provider signal, error class, note).
    fn error_table(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &[]
    }
    /// Classifies a non-2xx provider response.
    fn classify_error(&self, resp: &HttpResponse) -> Failure;
    /// True when a 2xx answer is really an error (MiniMax answers errors with HTTP 200 and
    /// `base_resp.status_code != 0`); `classify_error` then reads it.
    fn is_error_answer(&self, resp: &HttpResponse) -> bool {
        let _ = resp;
        false
    }
    /// The job id in a create response.
    fn job_id(&self, resp: &HttpResponse) -> Option<String>;
    /// Normalizes an immediate answer into a result (or a failure, e.g. a filtered output);
    /// `input` is the execution's validated input.
    fn normalize_immediate(
        &self,
        resp: &HttpResponse,
        input: &Value,
    ) -> Result<ProviderResult, Failure> {
        let _ = (resp, input);
        Err(Failure::new(
            ErrorClass::PipelineConfiguration,
            format!("adapter {} has no immediate results", self.name()),
        ))
    }
    /// Interprets a finished poll run.
    fn interpret_poll(&self, run: &StepRun) -> PollOutcome;
    /// Verifies a callback.
    fn verify_callback(
        &self,
        keys: &CallbackKeys,
        headers: &[(String, String)],
        body: &[u8],
        now_ms: i64,
    ) -> Result<VerifiedCallback, Failure> {
        let _ = (keys, headers, body, now_ms);
        Err(Failure::new(
            ErrorClass::CallbackFailure,
            format!("{} does not call back", self.name()),
        ))
    }
    /// The provider job a verified callback payload is about (Replicate's prediction `id`,
    /// fal's `request_id`, Luma's generation `id`); `None` when the body is not a job payload
    /// at all (a test ping). The lifecycle consumes a callback only for its execution's job.
    fn callback_job_id(&self, payload: &Value) -> Option<String> {
        let _ = payload;
        None
    }
    /// Interprets a verified callback payload.
    fn interpret_callback(&self, payload: &Value) -> CallbackVerdict {
        let _ = payload;
        CallbackVerdict::NeedsPoll
    }
    /// Whether the adapter implements callbacks (load-time check for callback bundles).
    fn supports_callbacks(&self) -> bool {
        false
    }
    /// Whether the adapter implements immediate results.
    fn supports_immediate(&self) -> bool {
        false
    }
}

/// The adapter of a name.
pub fn by_name(name: &str) -> Option<Arc<dyn Adapter>> {
    match name {
        "openai" => Some(Arc::new(openai::OpenAi)),
        "runway" => Some(Arc::new(runway::Runway)),
        "replicate" => Some(Arc::new(replicate::Replicate)),
        "fal" => Some(Arc::new(fal::Fal)),
        "stability" => Some(Arc::new(stability::Stability)),
        "elevenlabs" => Some(Arc::new(elevenlabs::ElevenLabs)),
        "luma" => Some(Arc::new(luma::Luma)),
        "minimax" => Some(Arc::new(minimax::MiniMax)),
        _ => None,
    }
}

/// The adapter of a bundle: a Rust adapter by name, or the `declared` adapter built from the
/// bundle's `interpret` and `errors` (with its secrets, for callback verification).
pub fn for_bundle(
    bundle: &crate::format::Bundle,
    secrets: &std::collections::BTreeMap<String, String>,
) -> Option<Arc<dyn Adapter>> {
    if bundle.adapter == "declared" {
        return Some(Arc::new(crate::declared::Declared::new(bundle, secrets)));
    }
    by_name(&bundle.adapter)
}

/// The output duration a model's input asks for (the field its model file names in
/// `duration_input`; a number of seconds or a string such as `5s`), from a step context.
pub fn requested_duration(ctx: &Value) -> Option<f64> {
    let field = ctx["model"]["duration_input"].as_str()?;
    crate::declared::number(&ctx["input"][field])
}

/// Names of all adapters.
pub const NAMES: [&str; 8] = [
    "openai",
    "runway",
    "replicate",
    "fal",
    "stability",
    "elevenlabs",
    "luma",
    "minimax",
];

/// The common mapping of HTTP statuses the provider didn't explain otherwise.
pub fn class_of_status(status: u16) -> ErrorClass {
    match status {
        400 | 404 | 413 | 415 | 422 => ErrorClass::ValidationError,
        401..=403 => ErrorClass::PipelineConfiguration,
        408 | 504 => ErrorClass::Timeout,
        409 | 425 | 500 => ErrorClass::ProviderTransient,
        429 => ErrorClass::RateLimited,
        502 | 503 | 529 => ErrorClass::ProviderUnavailable,
        s if s >= 500 => ErrorClass::ProviderTransient,
        _ => ErrorClass::ProviderFatal,
    }
}

/// A poll run that ended on a call failure (not on the job's state).
pub fn call_failure(adapter: &dyn Adapter, run: &StepRun) -> Option<PollOutcome> {
    use crate::engine::RunEnd;
    match &run.end {
        RunEnd::Completed => None,
        RunEnd::HttpFailed { response, .. } => {
            Some(PollOutcome::CallFailed(adapter.classify_error(response)))
        }
        RunEnd::Transport { error, .. } => Some(PollOutcome::CallFailed(
            crate::driver::transport_failure(error),
        )),
        RunEnd::Stopped { class, message } => Some(PollOutcome::Failed {
            failure: Failure::new(*class, message.clone()),
            raw: Value::Null,
        }),
        RunEnd::Template(m) => Some(PollOutcome::Failed {
            failure: Failure::new(ErrorClass::PipelineConfiguration, m.clone()),
            raw: Value::Null,
        }),
    }
}

/// The JSON pointer of the first of `fields` a provider's error message mentions (`/` when
/// none): providers that answer validation errors in prose name the field in it.
pub fn field_in(message: &str, fields: &[&str]) -> String {
    format!(
        "/{}",
        fields
            .iter()
            .find(|f| message.contains(*f))
            .copied()
            .unwrap_or("")
    )
}

/// The body of the last successful call of a poll run, or the outcome when there is none.
pub fn polled_body(run: &StepRun) -> Result<&Value, PollOutcome> {
    run.last_response().map(|r| &r.body).ok_or_else(|| {
        PollOutcome::CallFailed(Failure::new(
            ErrorClass::PipelineConfiguration,
            "poll steps made no call",
        ))
    })
}

/// An output from a URL, its kind guessed from the extension.
pub fn output_from_url(url: &str, default: OutputKind) -> Output {
    let path = url.split('?').next().unwrap_or(url).to_ascii_lowercase();
    let (kind, mime) = match path.rsplit('.').next().unwrap_or("") {
        "png" => (OutputKind::Image, Some("image/png")),
        "jpg" | "jpeg" => (OutputKind::Image, Some("image/jpeg")),
        "webp" => (OutputKind::Image, Some("image/webp")),
        "mp4" => (OutputKind::Video, Some("video/mp4")),
        "webm" => (OutputKind::Video, Some("video/webm")),
        "mp3" => (OutputKind::Audio, Some("audio/mpeg")),
        "wav" => (OutputKind::Audio, Some("audio/wav")),
        _ => (default, None),
    };
    Output {
        kind,
        url: Some(url.to_string()),
        data: None,
        mime_type: mime.map(str::to_string),
        width: None,
        height: None,
        duration_seconds: None,
    }
}

/// A provider file of the repository (`bundles/providers/<name>.yaml`), for tests of the
/// rules an adapter's failures go through.
#[cfg(test)]
#[allow(clippy::panic)]
pub(crate) fn provider_file(name: &str) -> crate::compose::ProviderFile {
    let path = format!(
        "{}/../../bundles/providers/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An adapter's classification of an error answer, then the provider file's rules (what
/// the driver does).
#[cfg(test)]
pub(crate) fn classified(adapter: &dyn Adapter, provider: &str, resp: &HttpResponse) -> Failure {
    let file = provider_file(provider);
    crate::rules::classify_http(
        &file.error_fields,
        &file.errors,
        resp,
        adapter.classify_error(resp),
    )
}

/// A failed job's failure as the driver ends it: the provider file's rules applied.
#[cfg(test)]
pub(crate) fn job_failed(provider: &str, outcome: PollOutcome) -> PollOutcome {
    match outcome {
        PollOutcome::Failed { failure, raw } => PollOutcome::Failed {
            failure: crate::rules::classify_job(&provider_file(provider).errors, failure),
            raw,
        },
        other => other,
    }
}

/// A short message of a provider body (never the whole body).
pub fn short(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s.to_string()
    }
}
