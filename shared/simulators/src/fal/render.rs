//! fal bodies: queue status objects (IN_QUEUE → IN_PROGRESS → COMPLETED, where COMPLETED may
//! carry `error` + `error_type`, or spell their absence as nulls under `sim:null_error`), the
//! result (model output or error with its HTTP status) and the webhook envelope
//! `{request_id, gateway_request_id, status: OK|ERROR, payload, error?}`.

use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::files::MediaKind;
use crate::jobs::{Job, Outcome, Phase};
use crate::provider::Provider;
use crate::state::SimState;
use crate::webhook::{Delivery, Signing};

/// Seed reported when the input has none: larger than 2^53, like fal's docs example.
pub const DEFAULT_SEED: u64 = 196_619_188_014_358_660;

/// The app id (`owner/alias`) of a submit path: status and result URLs drop the subpath.
pub fn app_id(variant: &str) -> String {
    variant.split('/').take(2).collect::<Vec<_>>().join("/")
}

fn urls(state: &SimState, job: &Job) -> (String, String, String) {
    let base = format!(
        "{}/{}/requests/{}",
        state.base_url(Provider::Fal),
        app_id(&job.variant),
        job.id
    );
    (
        base.clone(),
        format!("{base}/status"),
        format!("{base}/cancel"),
    )
}

/// The submit answer.
pub fn submitted(state: &SimState, job: &Job) -> Value {
    let (response_url, status_url, cancel_url) = urls(state, job);
    let mut out = json!({"status": "IN_QUEUE", "request_id": job.id, "response_url": response_url,
        "status_url": status_url, "cancel_url": cancel_url, "queue_position": 0});
    if job.webhook.is_some() {
        out["gateway_request_id"] = json!(job.id);
    }
    out
}

/// The status object at `now`; `with_logs` for `?logs=1`.
pub fn status(state: &SimState, job: &Job, now: Instant, with_logs: bool) -> Value {
    let (response_url, status_url, cancel_url) = urls(state, job);
    let mut out = json!({"request_id": job.id, "response_url": response_url, "status_url": status_url, "cancel_url": cancel_url});
    let logs = || {
        if with_logs {
            let at = rfc3339(job.created_wall + job.queue_for, 6);
            json!([{"message": "Generating...", "level": "INFO", "source": "USER", "timestamp": at}])
        } else {
            Value::Null
        }
    };
    match job.phase(now) {
        Phase::Queued => {
            out["status"] = json!("IN_QUEUE");
            out["queue_position"] = json!(0);
        }
        Phase::Running => {
            out["status"] = json!("IN_PROGRESS");
            out["logs"] = logs();
        }
        phase => {
            out["status"] = json!("COMPLETED");
            out["logs"] = logs();
            let run = job.duration.saturating_sub(job.queue_for).as_secs_f64();
            out["metrics"] = json!({"inference_time": run});
            if let Some((detail, kind)) = completed_error(job, phase) {
                out["error"] = json!(detail);
                out["error_type"] = json!(kind);
            } else if job.directives.null_error {
                // fal_client (fal-ai/fal, `projects/fal_client/src/fal_client/client.py`,
                // `Completed.error: str | None`, read with `data.get("error")`) accepts an
                // explicit null: no error.
                out["error"] = Value::Null;
                out["error_type"] = Value::Null;
            }
        }
    }
    out
}

/// `error`/`error_type` carried by COMPLETED (the fal trap: COMPLETED is not success).
/// `sim:request_timeout` ends the job COMPLETED with `error_type: "request_timeout"` (the
/// `x-fal-request-timeout` expiry; the result answers 504 with the same error).
fn completed_error(job: &Job, phase: Phase) -> Option<(&'static str, &'static str)> {
    if job.directives.has("request_timeout") && matches!(phase, Phase::Done(_)) {
        return Some(("Request timed out", "request_timeout"));
    }
    match phase {
        Phase::Done(Outcome::Fail) => Some(("Runner disconnected", "runner_disconnected")),
        Phase::Canceled => Some(("Request was cancelled by the client", "client_cancelled")),
        _ => None,
    }
}

/// The model output of a successful job.
pub fn output(job: &Job) -> Value {
    let seed = job
        .input
        .get("seed")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_SEED);
    let prompt = job.input.get("prompt").cloned().unwrap_or(Value::Null);
    let files = if job.outcome == Outcome::EmptyOutput {
        &[][..]
    } else {
        &job.outputs[..]
    };
    if MediaKind::guess(&job.variant) == MediaKind::Video {
        let video = files.first().map_or(Value::Null, |f| {
            json!({"url": f.url, "content_type": f.content_type, "file_name": f.file_name, "file_size": f.size})
        });
        return json!({"video": video, "seed": seed});
    }
    let images: Vec<Value> = files
        .iter()
        .map(|f| json!({"url": f.url, "width": f.width, "height": f.height, "content_type": f.content_type,
            "file_name": f.file_name, "file_size": f.size}))
        .collect();
    let nsfw: Vec<bool> = files.iter().map(|_| false).collect();
    let run = job.duration.saturating_sub(job.queue_for).as_secs_f64();
    json!({"images": images, "timings": {"inference": run}, "seed": seed, "has_nsfw_concepts": nsfw, "prompt": prompt})
}

/// The result of a terminal job: HTTP status, body, and `X-Fal-Error-Type` if any.
pub fn result(job: &Job, now: Instant) -> (StatusCode, Value, Option<&'static str>) {
    let model_error = |kind: &str, msg: &str| json!({"detail": [{"loc": ["body", "prompt"], "msg": msg, "type": kind, "input": job.input.get("prompt")}]});
    match job.phase(now) {
        Phase::Done(o) if o.is_success() && !job.directives.has("request_timeout") => {
            (StatusCode::OK, output(job), None)
        }
        Phase::Done(Outcome::ContentPolicy) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            model_error(
                "content_policy_violation",
                "The content could not be processed because it contained material flagged by a content checker.",
            ),
            None,
        ),
        Phase::Done(Outcome::Invalid) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            model_error(
                "value_error",
                "Input should be a valid prompt (sim:invalid)",
            ),
            None,
        ),
        phase => {
            let (detail, kind) =
                completed_error(job, phase).unwrap_or(("Internal server error", "internal_error"));
            let status = match kind {
                "client_cancelled" => 499,
                "request_timeout" => 504,
                _ => 503,
            };
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (
                status,
                json!({"detail": detail, "error_type": kind}),
                Some(kind),
            )
        }
    }
}

/// Webhook for a phase change: sent once the job is done (not on cancel).
pub fn webhooks(
    _state: &SimState,
    job: &Job,
    _from: Option<Phase>,
    to: Phase,
    now: Instant,
) -> Vec<Delivery> {
    let (Some(url), Phase::Done(_)) = (&job.webhook, to) else {
        return Vec::new();
    };
    let (status, payload, _) = result(job, now);
    let mut body = json!({"request_id": job.id, "gateway_request_id": job.id, "payload": payload});
    if status.is_success() {
        body["status"] = json!("OK");
    } else {
        body["status"] = json!("ERROR");
        body["error"] = json!(format!("Invalid status code: {}", status.as_u16()));
    }
    vec![Delivery {
        provider: Provider::Fal,
        url: url.clone(),
        body: body.to_string().into_bytes(),
        signing: Signing::Fal {
            request_id: job.id.clone(),
        },
    }]
}
