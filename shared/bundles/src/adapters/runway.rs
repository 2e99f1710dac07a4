//! Runway (tasks, polling): create returns `{id}`; `GET /v1/tasks/{id}` reports PENDING,
//! THROTTLED (queued, not an error), RUNNING (with progress), SUCCEEDED (output URLs),
//! FAILED (`failure`, `failureCode`) or CANCELLED. Cost: credits per second of output.

use super::{Adapter, class_of_status, output_from_url, short};
use crate::engine::StepRun;
use crate::http::HttpResponse;
use executor_lifecycle::{ErrorClass, Failure, OutputKind, PollOutcome, ProviderResult};
use serde_json::{Value, json};

/// The Runway adapter.
pub struct Runway;

impl Adapter for Runway {
    fn name(&self) -> &'static str {
        "runway"
    }

    fn error_table(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        // What only Rust does; statuses and failure codes are the provider file's `errors`.
        &[
            (
                "HTTP 400 naming a field",
                "validation_error",
                "the field is the first of `promptImage`, `promptText`, `ratio`, `duration`, `model`, `seed` the message mentions",
            ),
            (
                "task FAILED, no rule matches",
                "provider_fatal",
                "an undocumented or absent `failureCode`",
            ),
            (
                "task THROTTLED",
                "(not an error)",
                "queued by Runway's concurrency limit",
            ),
        ]
    }

    fn classify_error(&self, resp: &HttpResponse) -> Failure {
        let message = resp.body["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| resp.body.to_string());
        let class = class_of_status(resp.status);
        let mut f = Failure::new(class, short(&message))
            .with_status(resp.status)
            .with_retry_after_ms(resp.retry_after_ms());
        if class == ErrorClass::ValidationError {
            f.field = Some(super::field_in(
                &message,
                &[
                    "promptImage",
                    "promptText",
                    "ratio",
                    "duration",
                    "model",
                    "seed",
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
        let task = match super::polled_body(run) {
            Ok(b) => b,
            Err(o) => return o,
        };
        interpret_task(task, super::requested_duration(&run.ctx))
    }
}

/// Interprets a task object.
pub fn interpret_task(task: &Value, requested_duration: Option<f64>) -> PollOutcome {
    let status = task["status"].as_str().unwrap_or("");
    match status {
        "PENDING" | "THROTTLED" => PollOutcome::Pending {
            provider_status: status.into(),
            progress: None,
            started: false,
        },
        "RUNNING" => PollOutcome::Pending {
            provider_status: status.into(),
            progress: task["progress"].as_f64(),
            started: true,
        },
        "SUCCEEDED" => {
            let outputs: Vec<_> = task["output"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str())
                        .map(|u| {
                            let mut o = output_from_url(u, OutputKind::Video);
                            if o.kind == OutputKind::Video {
                                o.duration_seconds = requested_duration;
                            }
                            o
                        })
                        .collect()
                })
                .unwrap_or_default();
            let seconds = requested_duration.unwrap_or(5.0) * outputs.len().min(1) as f64;
            PollOutcome::Succeeded(ProviderResult {
                outputs,
                usage: json!({"duration_seconds": seconds}),
                raw: task.clone(),
            })
        }
        "FAILED" => {
            // The class comes from the provider file's rules on `failureCode` (the driver
            // applies them); none matching: provider_fatal.
            let code = task["failureCode"].as_str().unwrap_or("");
            let mut f = Failure::new(
                ErrorClass::ProviderFatal,
                short(task["failure"].as_str().unwrap_or("Runway task failed")),
            );
            if !code.is_empty() {
                f = f.with_code(code);
            }
            PollOutcome::Failed {
                failure: f,
                raw: task.clone(),
            }
        }
        "CANCELLED" => PollOutcome::Canceled { raw: task.clone() },
        other => PollOutcome::CallFailed(Failure::new(
            ErrorClass::ProviderTransient,
            format!("unknown Runway task status {other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    #[test]
    fn failure_codes_map_to_classes_by_the_provider_rules() {
        let class = |code: &str| match crate::adapters::job_failed(
            "runway",
            interpret_task(&json!({"status": "FAILED", "failureCode": code}), None),
        ) {
            PollOutcome::Failed { failure, .. } => failure.class,
            other => panic!("{other:?}"),
        };
        assert_eq!(class("SAFETY.INPUT.TEXT"), ErrorClass::ContentPolicy);
        assert_eq!(
            class("INPUT_PREPROCESSING.SAFETY.TEXT"),
            ErrorClass::ContentPolicy
        );
        assert_eq!(
            class("INTERNAL.BAD_OUTPUT.CODE01"),
            ErrorClass::ProviderTransient
        );
        assert_eq!(
            class("INPUT_PREPROCESSING.INTERNAL"),
            ErrorClass::ProviderTransient
        );
        assert_eq!(class("ASSET.INVALID"), ErrorClass::ValidationError);
        assert_eq!(class("SOMETHING.NEW"), ErrorClass::ProviderFatal);
    }

    #[test]
    fn throttled_is_pending_not_an_error() {
        match interpret_task(
            &json!({"id": "t", "status": "THROTTLED", "createdAt": "x"}),
            None,
        ) {
            PollOutcome::Pending { started, .. } => assert!(!started),
            other => panic!("{other:?}"),
        }
    }
}
