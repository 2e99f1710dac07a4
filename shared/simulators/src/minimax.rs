//! MiniMax simulator (`/minimax`): speech `POST /v1/t2a_v2` (see `speech`) and video: `POST /v1/video_generation` (`{model, prompt,
//! first_frame_image?, prompt_optimizer?, duration?, resolution?, callback_url?}`) answers
//! `{task_id, base_resp}`; `GET /v1/query/video_generation?task_id=` reports `status`
//! Preparing → Queueing → Processing → Success (with `file_id`) or Fail, plus `video_width` /
//! `video_height`; `GET /v1/files/retrieve?file_id=` answers `{file: {file_id, bytes,
//! created_at, filename, purpose, download_url}}` with the download served here. Auth is
//! `Authorization: Bearer …`.
//!
//! The trap: **every answer is HTTP 200**, errors included, with `base_resp.status_code != 0`:
//! 1004 missing or invalid key, 1002 rate limit (`sim:rate_limit`, the concurrency cap), 1008
//! insufficient balance (`sim:insufficient_quota`), 1026 sensitive input
//! (`sim:content_policy`), 2013 invalid parameters (`sim:invalid`, missing `model` or
//! `prompt`, and — our choice — an unknown task or file), 1024 internal error
//! (`sim:server_error`), 1000 unknown error (`sim:poll_error` on a status read). `sim:fail`
//! ends the task `Fail`; `sim:empty_output` ends it `Success` without a `file_id`.
//!
//! `file_id` is a string in the status answer and an integer in the file object, as in
//! MiniMax's file API. `callback_url` is accepted but never called: the verification
//! handshake MiniMax documents is unverified (see `providers.md`), so the simulator does not
//! pretend to know it.

mod speech;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::clock::unix_seconds;
use crate::directives::{Directives, prompt_key};
use crate::faults::{Rejection, admit};
use crate::files;
use crate::jobs::{Job, Outcome, Phase};
use crate::provider::Provider;
use crate::reply::{Auth, check_auth, json, parse_body};
use crate::state::SimState;
use crate::stats::Counter;

const P: Provider = Provider::MiniMax;
const MAX_PROMPT_CHARS: usize = 2000;
/// A file id is its task id plus this (both stay 15-digit numbers).
const FILE_ID_OFFSET: u64 = 100_000_000_000_000;
const TASK_IDS: std::ops::Range<u64> = 100_000_000_000_000..800_000_000_000_000;
/// The 1004 message, for a missing and for a wrong key alike.
pub const LOGIN_FAIL: &str = "login fail: Please carry the API secret key in the 'Authorization' field of the request header";

/// Routes under `/minimax`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/video_generation", post(create))
        .route("/v1/t2a_v2", post(speech::t2a))
        .route("/v1/query/video_generation", get(query))
        .route("/v1/files/retrieve", get(retrieve))
        .route("/files/{id}/{name}", get(files::serve))
}

fn success() -> Value {
    json!({"status_code": 0, "status_msg": "success"})
}

/// An error: HTTP 200 with a non-zero `base_resp.status_code`.
fn failure(code: u32, message: &str) -> Response {
    json(
        StatusCode::OK,
        &[],
        &json!({"base_resp": {"status_code": code, "status_msg": message}}),
    )
}

fn authorize(headers: &HeaderMap) -> Result<(), Response> {
    match check_auth(headers, &["Bearer"]) {
        Auth::Ok => Ok(()),
        Auth::Missing | Auth::Invalid => Err(failure(1004, LOGIN_FAIL)),
    }
}

/// The first missing or invalid parameter of a create body.
fn invalid_param(body: &Value) -> Option<String> {
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if text("model").is_none() {
        return Some("invalid params, model is required".to_owned());
    }
    match text("prompt") {
        None if text("first_frame_image").is_none() => {
            Some("invalid params, prompt is required".to_owned())
        }
        Some(p) if p.chars().count() > MAX_PROMPT_CHARS => Some(format!(
            "invalid params, prompt must be at most {MAX_PROMPT_CHARS} characters"
        )),
        _ => None,
    }
}

/// `(width, height)` of the video: `resolution` such as `"768P"`, else the model's default.
fn video_size(job: &Job) -> (u32, u32) {
    let height = job
        .input
        .get("resolution")
        .and_then(Value::as_str)
        .and_then(|r| r.trim_end_matches(['P', 'p']).parse::<u32>().ok())
        .unwrap_or(if job.model.contains("Hailuo") {
            768
        } else {
            720
        });
    let width = match height {
        768 => 1366,
        other => other * 16 / 9,
    };
    (width, height)
}

async fn create(State(state): State<Arc<SimState>>, headers: HeaderMap, raw: Bytes) -> Response {
    let reject = |resp: Response| {
        state.stats.bump(P, Counter::CreateRejection);
        resp
    };
    if let Err(resp) = authorize(&headers) {
        return reject(resp);
    }
    let body = match parse_body(&raw) {
        Ok(b) if b.is_object() => b,
        _ => {
            return reject(failure(
                2013,
                "invalid params, request body must be a JSON object",
            ));
        }
    };
    let directives = Directives::scan_as(&body, crate::provider::Provider::MiniMax);
    if let Err(rejection) = admit(&state, P, &directives).await {
        return match rejection {
            Rejection::RateLimited | Rejection::Capacity => failure(1002, "rate limit exceeded"),
            Rejection::ServerError => failure(1024, "internal error"),
        };
    }
    if directives.insufficient_quota {
        return reject(failure(1008, "insufficient balance"));
    }
    if let Some(message) = invalid_param(&body) {
        return reject(failure(2013, &message));
    }
    if directives.invalid {
        return reject(failure(
            2013,
            "invalid params, prompt is invalid (sim:invalid)",
        ));
    }
    if directives.content_policy {
        return reject(failure(1026, "input new_sensitive"));
    }
    let id = rand::random_range(TASK_IDS).to_string();
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
    job.variant = "video_generation".to_owned();
    if job.outcome == Outcome::Success {
        // `duration`: 6 or 10 seconds, 6 when absent; the size the task will report.
        let seconds = body.get("duration").and_then(Value::as_u64).unwrap_or(6);
        match state.files.generate_video(
            &state.base_url(P),
            &id,
            "output",
            1,
            video_size(&job),
            u32::try_from(seconds).unwrap_or(6),
        ) {
            Ok(outputs) => job.set_outputs(outputs),
            Err(_) => return reject(failure(1024, "internal error")),
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
    json(
        StatusCode::OK,
        &[],
        &json!({"task_id": id, "base_resp": success()}),
    )
}

/// The file id of a task's video.
fn file_id(task_id: &str) -> Option<u64> {
    task_id.parse::<u64>().ok()?.checked_add(FILE_ID_OFFSET)
}

/// The task status answer at `now`.
pub fn render(job: &Job, now: Instant) -> Value {
    let (status, done) = match job.phase(now) {
        Phase::Queued if now.saturating_duration_since(job.created_at) < job.queue_for / 2 => {
            ("Preparing", false)
        }
        Phase::Queued => ("Queueing", false),
        Phase::Running => ("Processing", false),
        Phase::Done(o) if o.is_success() => ("Success", true),
        Phase::Done(_) | Phase::Canceled => ("Fail", false),
    };
    let (width, height) = if done { video_size(job) } else { (0, 0) };
    let mut out = json!({"task_id": job.id, "status": status, "video_width": width,
        "video_height": height, "base_resp": success()});
    if done && job.outcome == Outcome::Success {
        if let Some(fid) = file_id(&job.id) {
            out["file_id"] = json!(fid.to_string());
        }
    }
    out
}

async fn query(
    State(state): State<Arc<SimState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = authorize(&headers) {
        return resp;
    }
    let Some(task_id) = params.get("task_id").filter(|t| !t.is_empty()) else {
        return failure(2013, "invalid params, task_id is required");
    };
    let Some(job) = state.jobs.get(P, task_id) else {
        return failure(2013, "invalid params, task not found");
    };
    state.stats.bump(P, Counter::Poll);
    if state.jobs.take_poll_error(P, task_id) {
        return failure(1000, "unknown error");
    }
    json(StatusCode::OK, &[], &render(&job, Instant::now()))
}

async fn retrieve(
    State(state): State<Arc<SimState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = authorize(&headers) {
        return resp;
    }
    let Some(fid) = params.get("file_id").and_then(|f| f.parse::<u64>().ok()) else {
        return failure(2013, "invalid params, file_id is required");
    };
    let now = Instant::now();
    let job = fid
        .checked_sub(FILE_ID_OFFSET)
        .and_then(|task| state.jobs.get(P, &task.to_string()))
        .filter(|j| j.phase(now) == Phase::Done(Outcome::Success));
    let Some((job, file)) = job.and_then(|j| Some((j.clone(), j.outputs.first()?.clone()))) else {
        return failure(2013, "invalid params, file not found");
    };
    state.stats.bump(P, Counter::ResultFetch);
    let created = unix_seconds(job.created_wall + job.duration);
    json(
        StatusCode::OK,
        &[],
        &json!({"file": {"file_id": fid, "bytes": file.size, "created_at": created,
            "filename": file.file_name, "purpose": "video_generation", "download_url": file.url},
            "base_resp": success()}),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn validates_params_and_maps_file_ids() {
        assert!(
            invalid_param(&json!({"prompt": "x"}))
                .unwrap()
                .contains("model")
        );
        assert!(
            invalid_param(&json!({"model": "MiniMax-Hailuo-02"}))
                .unwrap()
                .contains("prompt")
        );
        assert_eq!(
            invalid_param(&json!({"model": "I2V-01", "first_frame_image": "https://x/a.png"})),
            None
        );
        assert_eq!(file_id("361720188367060"), Some(461_720_188_367_060));
    }
}
