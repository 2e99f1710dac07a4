//! ElevenLabs text to speech: immediate; the audio comes back as bytes (`audio/mpeg` for the
//! default `mp3_44100_128`) or, on `/with-timestamps`, as JSON `audio_base64` with character
//! alignment. Errors are always under `detail`: the current `{type, code, message, status,
//! request_id, param}`, the legacy `{status, message}`, or FastAPI's 422 list. The trap: an
//! exhausted quota is **401** `quota_exceeded` — our account's problem, never retried. Cost is
//! characters, from the `character-cost` header (the text's length when it is missing).

use super::{Adapter, class_of_status, short};
use crate::engine::StepRun;
use crate::http::HttpResponse;
use executor_lifecycle::{ErrorClass, Failure, Output, OutputKind, PollOutcome, ProviderResult};
use serde_json::{Value, json};

/// The ElevenLabs adapter.
pub struct ElevenLabs;

impl Adapter for ElevenLabs {
    fn name(&self) -> &'static str {
        "elevenlabs"
    }

    fn error_table(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        // What only Rust does; codes and statuses are the provider file's `errors`.
        &[
            (
                "a validation error with `param`",
                "validation_error",
                "the field is `param`; else `/voice_id` for `voice_not_found`, `/text` for `max_character_limit_exceeded`",
            ),
            (
                "HTTP 422 FastAPI `detail[]`",
                "validation_error",
                "the field is the `loc` after `body`",
            ),
            ("HTTP 200 with an empty body", "partial_result", ""),
        ]
    }

    fn classify_error(&self, resp: &HttpResponse) -> Failure {
        let d = &resp.body["detail"];
        if let Some(items) = d.as_array() {
            // FastAPI validation: [{loc: ["body", "text"], msg, type}]
            let first = items.first().cloned().unwrap_or(Value::Null);
            let field = first["loc"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .skip(1)
                        .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .unwrap_or_default();
            let mut f = Failure::new(
                ErrorClass::ValidationError,
                short(&format!(
                    "{field}: {}",
                    first["msg"].as_str().unwrap_or("invalid input")
                )),
            )
            .with_status(resp.status);
            if let Some(t) = first["type"].as_str() {
                f = f.with_code(t);
            }
            f.field = Some(format!("/{field}"));
            return f;
        }
        let code = d["code"]
            .as_str()
            .or(d["status"].as_str())
            .unwrap_or("")
            .to_string();
        let message = d["message"]
            .as_str()
            .or(d.as_str())
            .unwrap_or("ElevenLabs returned an error");
        // The class by status (ElevenLabs' validation codes come with a 400); the provider
        // file's rules refine it by code.
        let class = class_of_status(resp.status);
        let mut f = Failure::new(class, short(message))
            .with_status(resp.status)
            .with_retry_after_ms(resp.retry_after_ms());
        if !code.is_empty() {
            f = f.with_code(code.clone());
        }
        if class == ErrorClass::ValidationError {
            f.field = Some(match (code.as_str(), d["param"].as_str()) {
                (_, Some(p)) => format!("/{p}"),
                ("voice_not_found", _) => "/voice_id".into(),
                ("max_character_limit_exceeded", _) => "/text".into(),
                _ => "/".into(),
            });
        }
        f
    }

    fn job_id(&self, resp: &HttpResponse) -> Option<String> {
        resp.header("request-id").map(str::to_string)
    }

    fn supports_immediate(&self) -> bool {
        true
    }

    fn normalize_immediate(
        &self,
        resp: &HttpResponse,
        input: &Value,
    ) -> Result<ProviderResult, Failure> {
        let body = &resp.body;
        // The header is the provider's own count; without it, the text's length in
        // characters (what ElevenLabs bills) rather than nothing.
        let characters = resp
            .header("character-cost")
            .and_then(|c| c.trim().parse::<u64>().ok())
            .or_else(|| input["text"].as_str().map(|t| t.chars().count() as u64));
        let (b64, mime, duration) = if let Some(b64) = body["body_base64"].as_str() {
            let mime = body["content_type"].as_str().unwrap_or("audio/mpeg");
            let mime = mime.split(';').next().unwrap_or(mime).trim().to_string();
            (Some(b64.to_string()), mime, None)
        } else if let Some(b64) = body["audio_base64"].as_str() {
            let end = body["alignment"]["character_end_times_seconds"]
                .as_array()
                .and_then(|a| a.last())
                .and_then(Value::as_f64);
            (Some(b64.to_string()), "audio/mpeg".to_string(), end)
        } else {
            (None, String::new(), None)
        };
        let raw = json!({
            "request-id": resp.header("request-id"),
            "character-cost": resp.header("character-cost"),
            "content_type": mime,
        });
        let Some(b64) = b64.filter(|b| !b.is_empty()) else {
            return Ok(ProviderResult {
                outputs: vec![],
                usage: json!({"characters": characters}),
                raw,
            });
        };
        Ok(ProviderResult {
            outputs: vec![Output {
                kind: OutputKind::Audio,
                url: None,
                data: Some(json!(b64)),
                mime_type: Some(mime),
                width: None,
                height: None,
                duration_seconds: duration,
            }],
            usage: json!({"characters": characters}),
            raw,
        })
    }

    fn interpret_poll(&self, run: &StepRun) -> PollOutcome {
        super::call_failure(self, run).unwrap_or_else(|| {
            PollOutcome::CallFailed(Failure::new(
                ErrorClass::PipelineConfiguration,
                "ElevenLabs text to speech is immediate; nothing to poll",
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::Map;

    fn resp(status: u16, headers: &[(&str, &str)], body: Value) -> HttpResponse {
        let mut h = Map::new();
        for (k, v) in headers {
            h.insert(k.to_string(), json!(v));
        }
        HttpResponse {
            status,
            headers: h,
            body,
        }
    }

    #[test]
    fn quota_is_a_401_and_not_retried() {
        let r = resp(
            401,
            &[],
            json!({"detail": {"status": "quota_exceeded", "message": "This request exceeds your quota of 10000. You have 59 credits remaining, while 10059 credits are required for this request."}}),
        );
        let f = crate::adapters::classified(&ElevenLabs, "elevenlabs", &r);
        assert_eq!(f.class, ErrorClass::PipelineConfiguration);
        assert!(!f.class.is_retryable());
    }

    #[test]
    fn concurrency_validation_and_fastapi_shapes() {
        let c = resp(
            429,
            &[],
            json!({"detail": {"type": "rate_limit_error", "code": "concurrent_limit_exceeded", "message": "Too many concurrent requests.", "status": "too_many_concurrent_requests", "request_id": "r1"}}),
        );
        assert_eq!(
            crate::adapters::classified(&ElevenLabs, "elevenlabs", &c).class,
            ErrorClass::RateLimited
        );
        let v = resp(
            422,
            &[],
            json!({"detail": [{"loc": ["body", "text"], "msg": "Field required", "type": "missing"}]}),
        );
        let f = crate::adapters::classified(&ElevenLabs, "elevenlabs", &v);
        assert_eq!(f.class, ErrorClass::ValidationError);
        assert_eq!(f.field.as_deref(), Some("/text"));
        let voice = resp(
            400,
            &[],
            json!({"detail": {"type": "validation_error", "code": "voice_not_found", "message": "A voice with the voice_id x was not found.", "status": "voice_not_found"}}),
        );
        assert_eq!(
            crate::adapters::classified(&ElevenLabs, "elevenlabs", &voice)
                .field
                .as_deref(),
            Some("/voice_id")
        );
    }

    #[test]
    fn audio_bytes_with_character_cost() {
        let r = resp(
            200,
            &[("character-cost", "27"), ("request-id", "req1")],
            json!({"body_base64": "//uQZAAA", "content_type": "audio/mpeg", "size": 6}),
        );
        let res = ElevenLabs.normalize_immediate(&r, &Value::Null).unwrap();
        assert_eq!(res.outputs[0].kind, OutputKind::Audio);
        assert_eq!(res.usage["characters"], 27);
    }
}
