//! Replicate (predictions, webhooks): statuses starting, processing, succeeded, failed,
//! canceled, aborted. A `processing` prediction may already carry output (the `Prefer: wait`
//! trap): it is not done. Errors are problem+json. Webhooks are signed per Standard Webhooks;
//! a verified prediction payload is trusted as the job's state.

use super::{Adapter, CallbackKeys, class_of_status, output_from_url, short};
use crate::engine::StepRun;
use crate::http::HttpResponse;
use crate::standard_webhooks;
use executor_lifecycle::{
    CallbackVerdict, ErrorClass, Failure, Output, OutputKind, PollOutcome, ProviderResult,
    VerifiedCallback,
};
use serde_json::{Value, json};

/// The Replicate adapter.
pub struct Replicate;

// The 422 Replicate answers a create whose version does not exist or may not be used by the
// token, `{"title": "Invalid version or not permitted", "detail": "The specified version does
// not exist (or perhaps you don't have permission to use it?)", "status": 422}` (body pasted
// in replicate/replicate-python issues), is a rule of bundles/providers/replicate.yaml. Field
// errors come as `title: "Input validation failed"` with `invalid_fields`.

impl Adapter for Replicate {
    fn name(&self) -> &'static str {
        "replicate"
    }

    fn error_table(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        // What only Rust does; statuses and failure texts are the provider file's `errors`.
        &[
            (
                "HTTP 422 with `invalid_fields`",
                "validation_error",
                "the field is the first `invalid_fields[].field` (without `input.`)",
            ),
            ("prediction `failed`, no rule matches", "provider_fatal", ""),
            (
                "prediction `succeeded` with no output",
                "partial_result",
                "",
            ),
        ]
    }

    fn classify_error(&self, resp: &HttpResponse) -> Failure {
        let b = &resp.body;
        let detail = b["detail"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| b.to_string());
        let title = b["title"].as_str().unwrap_or("");
        // The class by status; the provider file's rules refine it (a 422 "Invalid version or
        // not permitted" is our configuration, not the customer's input).
        let class = class_of_status(resp.status);
        let mut f = Failure::new(
            class,
            short(&if title.is_empty() {
                detail
            } else {
                format!("{title}: {detail}")
            }),
        )
        .with_status(resp.status)
        .with_retry_after_ms(resp.retry_after_ms());
        if class == ErrorClass::ValidationError {
            let field = b["invalid_fields"]
                .as_array()
                .and_then(|a| a.first())
                .and_then(|f| f["field"].as_str())
                .map(|f| format!("/{}", f.trim_start_matches("input.")))
                .unwrap_or_else(|| "/".into());
            f.field = Some(field);
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
        match super::polled_body(run) {
            Ok(body) => interpret_prediction(body),
            Err(o) => o,
        }
    }

    fn supports_callbacks(&self) -> bool {
        true
    }

    fn verify_callback(
        &self,
        keys: &CallbackKeys,
        headers: &[(String, String)],
        body: &[u8],
        now_ms: i64,
    ) -> Result<VerifiedCallback, Failure> {
        let secret = keys.replicate_webhook_secret.as_deref().ok_or_else(|| {
            Failure::new(
                ErrorClass::PipelineConfiguration,
                "REPLICATE_WEBHOOK_SECRET is not configured",
            )
        })?;
        let id = standard_webhooks::verify(secret, headers, body, now_ms / 1000).map_err(|e| {
            Failure::new(
                ErrorClass::CallbackFailure,
                format!("Replicate webhook signature: {e}"),
            )
        })?;
        let payload: Value = serde_json::from_slice(body).map_err(|e| {
            Failure::new(
                ErrorClass::CallbackFailure,
                format!("webhook body is not JSON: {e}"),
            )
        })?;
        Ok(VerifiedCallback {
            callback_id: id,
            payload,
        })
    }

    fn callback_job_id(&self, payload: &Value) -> Option<String> {
        payload["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    fn interpret_callback(&self, payload: &Value) -> CallbackVerdict {
        CallbackVerdict::Outcome(interpret_prediction(payload))
    }
}

/// Interprets a prediction object (GET or webhook body).
pub fn interpret_prediction(p: &Value) -> PollOutcome {
    let status = p["status"].as_str().unwrap_or("");
    match status {
        "starting" => PollOutcome::Pending {
            provider_status: status.into(),
            progress: None,
            started: false,
        },
        "processing" => PollOutcome::Pending {
            provider_status: status.into(),
            progress: None,
            started: true,
        },
        "succeeded" => {
            let outputs = outputs_of(&p["output"]);
            let usage = json!({
                "predict_time": p["metrics"]["predict_time"].as_f64().unwrap_or(0.0),
                "total_time": p["metrics"]["total_time"],
                "outputs": outputs.len(),
            });
            PollOutcome::Succeeded(ProviderResult {
                outputs,
                usage,
                raw: p.clone(),
            })
        }
        "failed" => {
            let error = p["error"].as_str().unwrap_or("prediction failed");
            PollOutcome::Failed {
                // The class comes from the provider file's rules on the error text (the
                // driver applies them); none matching: provider_fatal.
                failure: Failure::new(ErrorClass::ProviderFatal, short(error)),
                raw: p.clone(),
            }
        }
        "canceled" | "aborted" => PollOutcome::Canceled { raw: p.clone() },
        other => PollOutcome::CallFailed(Failure::new(
            ErrorClass::ProviderTransient,
            format!("unknown prediction status {other:?}"),
        )),
    }
}

fn outputs_of(output: &Value) -> Vec<Output> {
    let text = |s: &str| Output {
        kind: OutputKind::Text,
        url: None,
        data: Some(json!(s)),
        mime_type: Some("text/plain".into()),
        width: None,
        height: None,
        duration_seconds: None,
    };
    match output {
        Value::String(s) if s.starts_with("http") || s.starts_with("data:") => {
            vec![output_from_url(s, OutputKind::Image)]
        }
        Value::String(s) => vec![text(s)],
        Value::Array(items)
            if items.iter().all(|i| {
                i.as_str()
                    .is_some_and(|s| !s.starts_with("http") && !s.starts_with("data:"))
            }) && !items.is_empty() =>
        {
            let joined: String = items.iter().filter_map(|i| i.as_str()).collect();
            vec![text(&joined)]
        }
        Value::Array(items) => items.iter().flat_map(outputs_of).collect(),
        Value::Null => vec![],
        other => vec![Output {
            kind: OutputKind::Json,
            url: None,
            data: Some(other.clone()),
            mime_type: Some("application/json".into()),
            width: None,
            height: None,
            duration_seconds: None,
        }],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;
    use serde_json::Map;

    fn problem(status: u16, body: Value) -> HttpResponse {
        let mut headers = Map::new();
        headers.insert("content-type".into(), json!("application/problem+json"));
        HttpResponse {
            status,
            headers,
            body,
        }
    }

    #[test]
    fn invalid_version_is_our_configuration_not_the_customers_input() {
        // The body Replicate answers a create whose version does not exist or may not be
        // used by the token (providers.md §1 Errors, `predictions.create.422.invalid-version`).
        let f = crate::adapters::classified(
            &Replicate,
            "replicate",
            &problem(
                422,
                json!({"title": "Invalid version or not permitted", "detail": "The specified version does not exist (or perhaps you don't have permission to use it?)", "status": 422}),
            ),
        );
        assert_eq!(f.class, ErrorClass::PipelineConfiguration);
        assert_eq!(f.field, None);
        assert_eq!(f.http_status, Some(422));
        assert!(f.message.contains("Invalid version"), "{}", f.message);
    }

    #[test]
    fn other_422s_name_the_field() {
        let f = crate::adapters::classified(
            &Replicate,
            "replicate",
            &problem(
                422,
                json!({"title": "Input validation failed", "detail": "- input.prompt: Does not match format 'x'", "status": 422,
                "invalid_fields": [{"type": "format", "field": "input.prompt", "description": "input.prompt: Does not match format 'x'"}]}),
            ),
        );
        assert_eq!(f.class, ErrorClass::ValidationError);
        assert_eq!(f.field.as_deref(), Some("/prompt"));
    }

    #[test]
    fn processing_with_output_is_not_done() {
        let p = json!({"id": "x", "status": "processing", "output": ["https://replicate.delivery/a.png"]});
        assert!(matches!(
            interpret_prediction(&p),
            PollOutcome::Pending { started: true, .. }
        ));
    }

    #[test]
    fn succeeded_and_failed() {
        let ok = json!({"status": "succeeded", "output": ["https://replicate.delivery/x/out-0.png"], "metrics": {"predict_time": 1.5}});
        match interpret_prediction(&ok) {
            PollOutcome::Succeeded(r) => {
                assert_eq!(r.outputs[0].kind, OutputKind::Image);
                assert_eq!(r.usage["predict_time"], 1.5);
            }
            other => panic!("{other:?}"),
        }
        let bad = json!({"status": "failed", "error": "Prediction failed for an unknown reason. It might have run out of memory? (exitcode 2)"});
        assert!(
            matches!(interpret_prediction(&bad), PollOutcome::Failed { failure, .. } if failure.class == ErrorClass::ProviderFatal)
        );
        let nsfw = json!({"status": "failed", "error": "NSFW content detected. Try running it again, or try a different prompt."});
        assert!(
            matches!(crate::adapters::job_failed("replicate", interpret_prediction(&nsfw)), PollOutcome::Failed { failure, .. } if failure.class == ErrorClass::ContentPolicy)
        );
        assert!(matches!(
            interpret_prediction(&json!({"status": "aborted"})),
            PollOutcome::Canceled { .. }
        ));
    }
}
