//! MiniMax (Hailuo video, polling): `POST /v1/video_generation` answers `{task_id, base_resp}`;
//! `GET /v1/query/video_generation?task_id=` reports Preparing, Queueing, Processing, Success
//! (with `file_id`) or Fail; the download URL is one more call, `GET /v1/files/retrieve?file_id=`
//! (the bundle makes it with a `conditional` step once the task succeeded). The trap: errors
//! arrive with **HTTP 200** and `base_resp.status_code != 0` — [`Adapter::is_error_answer`]
//! makes the engine treat them as failed calls, and the code decides the class (1002 rate
//! limit, 1004 auth, 1008 balance, 1026/1027 sensitive content, 2013 invalid parameters).
//! Cost: per video.

use super::{Adapter, class_of_status, output_from_url, short};
use crate::engine::StepRun;
use crate::http::HttpResponse;
use executor_lifecycle::{ErrorClass, Failure, OutputKind, PollOutcome, ProviderResult};
use serde_json::{Value, json};

/// The MiniMax adapter.
pub struct MiniMax;

/// The class of a `base_resp.status_code`.
fn code_of(body: &Value) -> Option<i64> {
    body["base_resp"]["status_code"].as_i64()
}

impl Adapter for MiniMax {
    fn name(&self) -> &'static str {
        "minimax"
    }

    fn error_table(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        // What only Rust does; `base_resp.status_code` codes are the provider file's `errors`.
        &[
            (
                "HTTP 200 with `base_resp.status_code` != 0",
                "(by code)",
                "an error answer; a code no rule names is provider_fatal",
            ),
            (
                "code 2013",
                "validation_error",
                "the field is the first of `prompt`, `model`, `first_frame_image`, `duration`, `resolution` the message names",
            ),
            ("task `Fail`", "provider_fatal", ""),
            ("task `Success` without `file_id`", "partial_result", ""),
        ]
    }

    fn is_error_answer(&self, resp: &HttpResponse) -> bool {
        code_of(&resp.body).is_some_and(|c| c != 0)
    }

    fn classify_error(&self, resp: &HttpResponse) -> Failure {
        let msg = resp.body["base_resp"]["status_msg"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| resp.body.to_string());
        // A code is classed by the provider file's rules (the driver applies them); a code no
        // rule names is provider_fatal. No code: by status.
        let code = code_of(&resp.body).filter(|c| *c != 0);
        let class = match code {
            Some(_) => ErrorClass::ProviderFatal,
            None => class_of_status(resp.status),
        };
        let mut f = Failure::new(class, short(&msg))
            .with_status(resp.status)
            .with_retry_after_ms(resp.retry_after_ms());
        if let Some(c) = code {
            f = f.with_code(c.to_string());
        }
        // 2013 (invalid parameters) messages name the field.
        if code == Some(2013) || class == ErrorClass::ValidationError {
            f.field = Some(super::field_in(
                &msg,
                &[
                    "prompt",
                    "model",
                    "first_frame_image",
                    "duration",
                    "resolution",
                ],
            ));
        }
        f
    }

    fn job_id(&self, resp: &HttpResponse) -> Option<String> {
        match &resp.body["task_id"] {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn interpret_poll(&self, run: &StepRun) -> PollOutcome {
        if let Some(o) = super::call_failure(self, run) {
            return o;
        }
        let Some(task) = run.responses.get("query").map(|r| &r.body) else {
            return PollOutcome::CallFailed(Failure::new(
                ErrorClass::PipelineConfiguration,
                "MiniMax poll steps need a step with id `query`",
            ));
        };
        let status = task["status"].as_str().unwrap_or("");
        match status {
            "Preparing" | "Queueing" => PollOutcome::Pending {
                provider_status: status.into(),
                progress: None,
                started: false,
            },
            "Processing" => PollOutcome::Pending {
                provider_status: status.into(),
                progress: None,
                started: true,
            },
            "Success" => {
                let file = run
                    .responses
                    .get("file")
                    .map(|r| r.body["file"].clone())
                    .unwrap_or(Value::Null);
                let mut outputs = Vec::new();
                if let Some(url) = file["download_url"].as_str() {
                    let mut o = output_from_url(url, OutputKind::Video);
                    o.kind = OutputKind::Video;
                    o.mime_type.get_or_insert_with(|| "video/mp4".into());
                    o.width = task["video_width"].as_u64().map(|w| w as u32);
                    o.height = task["video_height"].as_u64().map(|h| h as u32);
                    o.duration_seconds = super::requested_duration(&run.ctx);
                    outputs.push(o);
                }
                PollOutcome::Succeeded(ProviderResult {
                    usage: json!({"videos": outputs.len()}),
                    outputs,
                    raw: json!({"task": task, "file": file}),
                })
            }
            "Fail" => PollOutcome::Failed {
                failure: Failure::new(
                    ErrorClass::ProviderFatal,
                    short(
                        task["base_resp"]["status_msg"]
                            .as_str()
                            .filter(|m| *m != "success")
                            .unwrap_or("MiniMax video generation failed"),
                    ),
                ),
                raw: task.clone(),
            },
            other => PollOutcome::CallFailed(Failure::new(
                ErrorClass::ProviderFatal,
                format!("unknown MiniMax task status {other:?}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::Map;

    fn ok200(body: Value) -> HttpResponse {
        HttpResponse {
            status: 200,
            headers: Map::new(),
            body,
        }
    }

    #[test]
    fn errors_hide_in_200s() {
        let rate = ok200(
            json!({"task_id": "", "base_resp": {"status_code": 1002, "status_msg": "rate limit"}}),
        );
        assert!(MiniMax.is_error_answer(&rate));
        assert_eq!(
            crate::adapters::classified(&MiniMax, "minimax", &rate).class,
            ErrorClass::RateLimited
        );
        let sensitive =
            ok200(json!({"base_resp": {"status_code": 1026, "status_msg": "input new_sensitive"}}));
        assert_eq!(
            crate::adapters::classified(&MiniMax, "minimax", &sensitive).class,
            ErrorClass::ContentPolicy
        );
        let balance = ok200(
            json!({"base_resp": {"status_code": 1008, "status_msg": "insufficient balance"}}),
        );
        assert_eq!(
            crate::adapters::classified(&MiniMax, "minimax", &balance).class,
            ErrorClass::PipelineConfiguration
        );
        let fine = ok200(
            json!({"task_id": "106916112212032", "base_resp": {"status_code": 0, "status_msg": "success"}}),
        );
        let invalid = ok200(
            json!({"base_resp": {"status_code": 2013, "status_msg": "invalid params, duration must be 6 or 10"}}),
        );
        let f = crate::adapters::classified(&MiniMax, "minimax", &invalid);
        assert_eq!(f.class, ErrorClass::ValidationError);
        assert_eq!(f.field.as_deref(), Some("/duration"));
        let unknown = ok200(json!({"base_resp": {"status_code": 9999, "status_msg": "new"}}));
        assert_eq!(
            crate::adapters::classified(&MiniMax, "minimax", &unknown).class,
            ErrorClass::ProviderFatal
        );
        assert!(!MiniMax.is_error_answer(&fine));
        assert_eq!(MiniMax.job_id(&fine).as_deref(), Some("106916112212032"));
    }
}
