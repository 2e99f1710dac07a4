//! Runway simulator (`/runway`): `POST /v1/{image_to_video|text_to_image|…}` answers
//! `{"id": "<uuid>"}`; `GET /v1/tasks/{id}` reports PENDING (or THROTTLED with
//! `sim:throttled`) → RUNNING with `progress` → SUCCEEDED with `output` URLs, FAILED with
//! `failure` + `failureCode` (`sim:content_policy` → `SAFETY.INPUT.TEXT`, `sim:fail` →
//! `INTERNAL.BAD_OUTPUT.CODE01`, `sim:fail sim:failure_code=CODE` → any [`FAILURE_CODES`]),
//! or CANCELLED; `DELETE /v1/tasks/{id}` cancels (204). Every call
//! needs `Authorization: Bearer …` and `X-Runway-Version`; errors are JSON with an `error`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::clock::{rfc3339, uuid_v4};
use crate::directives::{Directives, prompt_key};
use crate::faults::{Rejection, admit};
use crate::files::{self, MediaKind};
use crate::jobs::{Job, Outcome, Phase};
use crate::provider::Provider;
use crate::reply::{Auth, check_auth, header, json, parse_body};
use crate::state::SimState;
use crate::stats::Counter;

const P: Provider = Provider::Runway;

/// Task types accepted at `POST /v1/{task_type}` and their required body fields.
const TASK_TYPES: [(&str, &[&str]); 8] = [
    ("image_to_video", &["model", "promptImage"]),
    ("text_to_video", &["model", "promptText"]),
    ("video_to_video", &["model", "videoUri", "promptText"]),
    ("text_to_image", &["model", "promptText"]),
    ("character_performance", &["model"]),
    ("video_upscale", &["model", "videoUri"]),
    // Audio tasks (ElevenLabs models behind Runway's task API): an MP3 in `output`.
    ("text_to_speech", &["model", "promptText"]),
    ("sound_effect", &["model", "promptText"]),
];

/// Routes under `/runway`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/tasks/{id}", get(get_task).delete(delete_task))
        .route("/v1/{task_type}", post(create))
        .route("/files/{id}/{name}", get(files::serve))
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, &[], &json!({"error": message}))
}

fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The service is temporarily overloaded. Please retry with exponential backoff.",
    )
}

/// Auth and `X-Runway-Version`, required on every call.
fn preflight(headers: &HeaderMap) -> Result<(), Response> {
    match check_auth(headers, &["Bearer"]) {
        Auth::Ok => {}
        Auth::Missing => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "Missing API key. Pass it in the Authorization header as Bearer <key>.",
            ));
        }
        Auth::Invalid => return Err(error(StatusCode::UNAUTHORIZED, "Invalid API key.")),
    }
    match header(headers, "x-runway-version") {
        Some(v) if !v.trim().is_empty() => Ok(()),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "The X-Runway-Version header is required. Use X-Runway-Version: 2024-11-06.",
        )),
    }
}

/// Pixel size of a Runway `ratio` such as `"1280:720"`.
fn ratio_size(body: &Value) -> (u32, u32) {
    body.get("ratio")
        .and_then(Value::as_str)
        .and_then(|r| r.split_once(':'))
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .unwrap_or((1280, 720))
}

async fn create(
    State(state): State<Arc<SimState>>,
    Path(task_type): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let reject = |resp: Response| {
        state.stats.bump(P, Counter::CreateRejection);
        resp
    };
    let Some((_, required)) = TASK_TYPES.iter().find(|(t, _)| *t == task_type) else {
        return error(StatusCode::NOT_FOUND, "Not found");
    };
    if let Err(resp) = preflight(&headers) {
        return reject(resp);
    }
    let body = match parse_body(&raw) {
        Ok(b) if b.is_object() => b,
        _ => {
            return reject(error(
                StatusCode::BAD_REQUEST,
                "Request body must be a JSON object.",
            ));
        }
    };
    let directives = Directives::scan_as(&body, crate::provider::Provider::Runway);
    if let Err(rejection) = admit(&state, P, &directives).await {
        return match rejection {
            Rejection::RateLimited | Rejection::Capacity => json(
                StatusCode::TOO_MANY_REQUESTS,
                &[("retry-after", "1".to_owned())],
                &json!({"error": "You have exceeded the rate limit. Please retry with exponential backoff."}),
            ),
            Rejection::ServerError => unavailable(),
        };
    }
    if let Some(field) = required
        .iter()
        .find(|f| body.get(**f).is_none_or(Value::is_null))
    {
        return reject(json(
            StatusCode::BAD_REQUEST,
            &[],
            &json!({"error": format!("Validation of body failed: {field} is required."),
            "issues": [{"path": [field], "message": "Required"}]}),
        ));
    }
    if directives.invalid {
        return reject(json(
            StatusCode::BAD_REQUEST,
            &[],
            &json!({"error": "Validation of body failed: promptText is invalid.",
            "issues": [{"path": ["promptText"], "message": "Invalid input (sim:invalid)"}]}),
        ));
    }
    let id = uuid_v4();
    let mut job = Job::new(
        P,
        id.clone(),
        body.clone(),
        directives.clone(),
        state.job_duration(directives.duration_ms),
    );
    job.model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    job.variant = task_type.clone();
    if directives.has("failure_code") && job.outcome.is_success() {
        // `sim:failure_code=CODE` alone fails the task with that code.
        job.outcome = Outcome::Fail;
    }
    if job.outcome == Outcome::Success {
        let made = if matches!(task_type.as_str(), "text_to_speech" | "sound_effect") {
            let text = body
                .get("promptText")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Ok(vec![state.files.put(
                &state.base_url(P),
                &id,
                "out-0.mp3",
                "audio/mpeg",
                crate::media::speech_mp3(text),
                (0, 0),
            )])
        } else if task_type == "text_to_image" {
            state.files.generate(
                &state.base_url(P),
                &id,
                "out",
                MediaKind::Image,
                1,
                ratio_size(&body),
            )
        } else {
            // `duration`: 5 or 10 seconds (gen4_turbo), 5 when absent.
            let seconds = body.get("duration").and_then(Value::as_u64).unwrap_or(5);
            state.files.generate_video(
                &state.base_url(P),
                &id,
                "out",
                1,
                ratio_size(&body),
                u32::try_from(seconds).unwrap_or(5),
            )
        };
        match made {
            Ok(outputs) => job.set_outputs(outputs),
            Err(_) => return reject(unavailable()),
        }
    }
    state.jobs.insert(job);
    state
        .stats
        .record_create(P, &prompt_key(&body), state.inflight(P));
    if let Some(ms) = directives.hang_after_create_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(gateway) = crate::faults::after_create(&state, P, &directives) {
        return gateway;
    }
    json(StatusCode::OK, &[], &json!({"id": id}))
}

/// The documented `failureCode` families (docs.dev.runwayml.com/errors/task-failures) and
/// the human text that goes with each; suffixes other than `SAFETY.INPUT.TEXT` and
/// `INTERNAL.BAD_OUTPUT.CODE01` are not enumerated in the docs read (UNCONFIRMED).
pub const FAILURE_CODES: [&str; 7] = [
    "SAFETY.INPUT.TEXT",
    "SAFETY.INPUT.IMAGE",
    "SAFETY.OUTPUT.VIDEO",
    "INTERNAL.BAD_OUTPUT.CODE01",
    "INPUT_PREPROCESSING.SAFETY.TEXT",
    "INPUT_PREPROCESSING.INTERNAL",
    "INTERNAL",
];

/// The `failure` text of a `failureCode` (wording ours: "do not show to users without context").
pub fn failure_text(code: &str) -> &'static str {
    if code.starts_with("SAFETY.INPUT") {
        "Your input did not pass our content moderation. Please revise it and try again."
    } else if code.starts_with("SAFETY.OUTPUT") {
        "The generated output did not pass our content moderation."
    } else if code.starts_with("INTERNAL.BAD_OUTPUT") {
        "The output was rejected for quality reasons. Inputs with overlaid text or graphics often cause this."
    } else if code == "INPUT_PREPROCESSING.SAFETY.TEXT" {
        "Your prompt text did not pass our content moderation."
    } else if code.starts_with("INPUT_PREPROCESSING.INTERNAL") {
        "The moderation system failed to process the input. Please retry."
    } else {
        "An unexpected error occurred while generating the output."
    }
}

/// The task object in Runway's discriminated shape.
pub fn render(job: &Job, now: Instant) -> Value {
    let mut out = json!({"id": job.id, "createdAt": rfc3339(job.created_wall, 3)});
    let status = match job.phase(now) {
        Phase::Queued if job.directives.throttled => "THROTTLED",
        Phase::Queued => "PENDING",
        Phase::Running => {
            out["progress"] = json!((job.progress(now) * 100.0).round() / 100.0);
            "RUNNING"
        }
        Phase::Done(Outcome::Success | Outcome::EmptyOutput) => {
            out["output"] = json!(
                job.outputs
                    .iter()
                    .map(|f| f.url.clone())
                    .collect::<Vec<_>>()
            );
            "SUCCEEDED"
        }
        Phase::Done(o @ (Outcome::ContentPolicy | Outcome::Fail | Outcome::Invalid)) => {
            let code = match job.directives.extra("failure_code") {
                Some(Some(code)) => code,
                _ if o == Outcome::ContentPolicy => "SAFETY.INPUT.TEXT",
                _ => "INTERNAL.BAD_OUTPUT.CODE01",
            };
            out["failure"] = json!(failure_text(code));
            out["failureCode"] = json!(code);
            "FAILED"
        }
        Phase::Canceled => "CANCELLED",
    };
    out["status"] = json!(status);
    out
}

async fn get_task(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = preflight(&headers) {
        return resp;
    }
    let Some(job) = state.jobs.get(P, &id) else {
        return error(StatusCode::NOT_FOUND, "Task not found.");
    };
    state.stats.bump(P, Counter::Poll);
    if state.jobs.take_poll_error(P, &id) {
        return unavailable();
    }
    json(StatusCode::OK, &[], &render(&job, Instant::now()))
}

async fn delete_task(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = preflight(&headers) {
        return resp;
    }
    let found = state.jobs.update(P, &id, |job| {
        if !job.cancel(Instant::now()) {
            job.deleted = true;
        }
    });
    match found {
        Some(()) => {
            state.stats.bump(P, Counter::Cancel);
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "Task not found."),
    }
}
