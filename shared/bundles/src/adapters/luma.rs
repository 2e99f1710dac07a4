//! Luma Dream Machine (generations, callback): `POST /dream-machine/v1/generations/video`
//! answers 201 with a Generation `{id, state, failure_reason, assets, model, request, ...}`;
//! `state` goes queued → dreaming → completed (`assets.video`, `assets.image`) or failed
//! (`failure_reason`). Luma POSTs the Generation to `callback_url` on dreaming, completed and
//! failed — **unsigned** (no signature is documented), so a callback is only a nudge: the
//! lifecycle polls the generation to learn its state, and a forged callback costs one poll and
//! changes nothing. Errors are `{"detail": "<message>"}`, classified by HTTP status. Cost:
//! per second of output video (`duration` of the request, "5s"/"9s").

use super::{Adapter, class_of_status, output_from_url, short};
use crate::engine::StepRun;
use crate::http::HttpResponse;
use executor_lifecycle::{
    CallbackVerdict, ErrorClass, Failure, OutputKind, PollOutcome, ProviderResult, VerifiedCallback,
};
use serde_json::{Value, json};
use sha2::Digest;

/// The Luma adapter.
pub struct Luma;

/// Seconds of a Luma duration such as `"5s"`.
fn seconds(d: &Value) -> Option<f64> {
    match d {
        Value::String(s) => s.trim_end_matches('s').trim().parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Interprets a Generation object.
pub fn interpret_generation(g: &Value, requested: Option<f64>) -> PollOutcome {
    let state = g["state"].as_str().unwrap_or("");
    match state {
        "queued" => PollOutcome::Pending {
            provider_status: state.into(),
            progress: None,
            started: false,
        },
        "dreaming" => PollOutcome::Pending {
            provider_status: state.into(),
            progress: None,
            started: true,
        },
        "completed" => {
            let assets = &g["assets"];
            let mut outputs = Vec::new();
            let duration = requested
                .or_else(|| seconds(&g["request"]["duration"]))
                .unwrap_or(5.0);
            if let Some(v) = assets["video"].as_str() {
                let mut o = output_from_url(v, OutputKind::Video);
                o.duration_seconds = Some(duration);
                outputs.push(o);
            }
            if let Some(i) = assets["image"].as_str() {
                outputs.push(output_from_url(i, OutputKind::Image));
            }
            let has_video = outputs.iter().any(|o| o.kind == OutputKind::Video);
            PollOutcome::Succeeded(ProviderResult {
                usage: json!({"duration_seconds": if has_video { duration } else { 0.0 }}),
                outputs,
                raw: g.clone(),
            })
        }
        "failed" => {
            let reason = g["failure_reason"]
                .as_str()
                .unwrap_or("Luma generation failed");
            PollOutcome::Failed {
                // The class comes from the provider file's rules on the reason (the driver
                // applies them); none matching: provider_fatal.
                failure: Failure::new(ErrorClass::ProviderFatal, short(reason)),
                raw: g.clone(),
            }
        }
        other => PollOutcome::CallFailed(Failure::new(
            ErrorClass::ProviderFatal,
            format!("unknown Luma generation state {other:?}"),
        )),
    }
}

impl Adapter for Luma {
    fn name(&self) -> &'static str {
        "luma"
    }

    fn error_table(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        // What only Rust does; statuses and failure reasons are the provider file's `errors`.
        &[
            (
                "a validation error",
                "validation_error",
                "the field is the first of `prompt`, `model`, `aspect_ratio`, `keyframes`, `resolution`, `duration` the detail mentions",
            ),
            ("generation `failed`, no rule matches", "provider_fatal", ""),
            (
                "callback (unsigned)",
                "(not trusted)",
                "a nudge: the generation is read to confirm",
            ),
            (
                "generation `completed` without assets",
                "partial_result",
                "",
            ),
        ]
    }

    fn classify_error(&self, resp: &HttpResponse) -> Failure {
        let detail = resp.body["detail"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| resp.body.to_string());
        // The class by status; the provider file's rules refine it (a 400 whose detail reads
        // as moderation is content_policy).
        let class = class_of_status(resp.status);
        let mut f = Failure::new(class, short(&detail))
            .with_status(resp.status)
            .with_retry_after_ms(resp.retry_after_ms());
        if class == ErrorClass::ValidationError {
            f.field = Some(super::field_in(
                &detail,
                &[
                    "prompt",
                    "model",
                    "aspect_ratio",
                    "keyframes",
                    "resolution",
                    "duration",
                ],
            ));
        }
        f
    }

    fn job_id(&self, resp: &HttpResponse) -> Option<String> {
        resp.body["id"].as_str().map(str::to_string)
    }

    fn interpret_poll(&self, run: &StepRun) -> PollOutcome {
        if let Some(o) = super::call_failure(self, run) {
            return o;
        }
        let g = match super::polled_body(run) {
            Ok(b) => b,
            Err(o) => return o,
        };
        interpret_generation(g, super::requested_duration(&run.ctx))
    }

    fn supports_callbacks(&self) -> bool {
        true
    }

    fn verify_callback(
        &self,
        _keys: &super::CallbackKeys,
        _headers: &[(String, String)],
        body: &[u8],
        _now_ms: i64,
    ) -> Result<VerifiedCallback, Failure> {
        // Nothing to verify: Luma does not sign callbacks. The payload is never trusted.
        let payload: Value = serde_json::from_slice(body).map_err(|e| {
            Failure::new(
                ErrorClass::CallbackFailure,
                format!("Luma callback body is not JSON: {e}"),
            )
        })?;
        if !payload.is_object() {
            return Err(Failure::new(
                ErrorClass::CallbackFailure,
                "Luma callback body is not a Generation object",
            ));
        }
        let digest = sha2::Sha256::digest(body);
        Ok(VerifiedCallback {
            callback_id: format!("luma-{}", hex::encode(&digest[..12])),
            payload,
        })
    }

    fn callback_job_id(&self, payload: &Value) -> Option<String> {
        payload["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    fn interpret_callback(&self, _payload: &Value) -> CallbackVerdict {
        CallbackVerdict::NeedsPoll
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn states_map_to_the_lifecycle() {
        let done = json!({"id": "g1", "state": "completed", "assets": {"video": "https://storage.cdn-luma.com/x.mp4", "image": "https://storage.cdn-luma.com/x.jpg"}, "request": {"duration": "9s"}});
        match interpret_generation(&done, None) {
            PollOutcome::Succeeded(r) => {
                assert_eq!(r.outputs.len(), 2);
                assert_eq!(r.usage["duration_seconds"], 9.0);
            }
            o => panic!("{o:?}"),
        }
        let failed = json!({"id": "g1", "state": "failed", "failure_reason": "Prompt not allowed because it contains unsafe content (moderation)"});
        match crate::adapters::job_failed("luma", interpret_generation(&failed, None)) {
            PollOutcome::Failed { failure, .. } => {
                assert_eq!(failure.class, ErrorClass::ContentPolicy)
            }
            o => panic!("{o:?}"),
        }
        let other = json!({"id": "g1", "state": "failed", "failure_reason": "Generation failed due to an internal error. Please try again."});
        match crate::adapters::job_failed("luma", interpret_generation(&other, None)) {
            PollOutcome::Failed { failure, .. } => {
                assert_eq!(failure.class, ErrorClass::ProviderFatal)
            }
            o => panic!("{o:?}"),
        }
        let moderated = crate::adapters::classified(
            &Luma,
            "luma",
            &HttpResponse {
                status: 400,
                headers: serde_json::Map::new(),
                body: json!({"detail": "Prompt not allowed because advanced moderation failed"}),
            },
        );
        assert_eq!(moderated.class, ErrorClass::ContentPolicy);
        assert_eq!(moderated.field, None);
        assert!(matches!(
            interpret_generation(&json!({"state": "dreaming"}), None),
            PollOutcome::Pending { started: true, .. }
        ));
    }

    #[test]
    fn callbacks_are_nudges_only() {
        let body =
            br#"{"id":"g1","state":"completed","assets":{"video":"https://evil.example/x.mp4"}}"#;
        let v = Luma
            .verify_callback(&Default::default(), &[], body, 0)
            .unwrap();
        assert!(v.callback_id.starts_with("luma-"));
        assert!(matches!(
            Luma.interpret_callback(&v.payload),
            CallbackVerdict::NeedsPoll
        ));
    }
}
