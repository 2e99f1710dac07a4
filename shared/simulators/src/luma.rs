//! Luma Dream Machine simulator (`/luma`), base path `/dream-machine/v1`:
//! `POST /generations/video` (and the older `POST /generations`) creates a video generation
//! (`model` required: `ray-1-6`, `ray-2` or `ray-flash-2`; `prompt`, `aspect_ratio`, `loop`,
//! `keyframes`, `callback_url`, `resolution`, `duration`) and answers **201** with the
//! Generation object; `GET /generations/{id}` reads it (`state` queued → dreaming →
//! completed with `assets.video` served here (one output per generation), or failed with
//! `failure_reason`); `DELETE /generations/{id}` deletes it (204, later reads 404). Auth is
//! `Authorization: Bearer …`; errors are `{"detail": "<message>"}`.
//!
//! With a `callback_url`, the Generation object is POSTed (JSON, no signature headers: none
//! are documented) when it becomes `dreaming`, `completed` or `failed`, retried per
//! [`crate::SimConfig::webhook_retry_delays_ms`] and subject to `sim:lose_callback`,
//! `sim:duplicate_callback` and `sim:late_callback`. The trap: `dreaming` means running, and
//! callbacks are unauthenticated, so adapters must re-read the generation to trust one.
//! `sim:fail` and `sim:content_policy` end the job `failed`, `sim:empty_output` ends it
//! `completed` with empty `assets`.

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
use crate::driver;
use crate::faults::{Rejection, admit};
use crate::files;
use crate::jobs::{Job, Outcome, Phase};
use crate::provider::Provider;
use crate::reply::{Auth, check_auth, json, parse_body};
use crate::state::SimState;
use crate::stats::Counter;
use crate::webhook::{Delivery, Signing};

const P: Provider = Provider::Luma;
const MODELS: [&str; 3] = ["ray-1-6", "ray-2", "ray-flash-2"];
const ASPECT_RATIOS: [&str; 7] = ["1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"];
const RESOLUTIONS: [&str; 4] = ["540p", "720p", "1080p", "4k"];
const DURATIONS: [&str; 2] = ["5s", "9s"];
/// `failure_reason` of `sim:fail` (wording not verified against the real API).
pub const FAIL_REASON: &str = "Generation failed due to an internal error. Please try again.";
/// `failure_reason` of `sim:content_policy` (wording not verified against the real API).
pub const MODERATION_REASON: &str = "Prompt not allowed because advanced moderation failed";

/// Routes under `/luma`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route(
            "/dream-machine/v1/generations",
            post(create).get(list_generations),
        )
        .route("/dream-machine/v1/generations/video", post(create))
        .route(
            "/dream-machine/v1/generations/{id}",
            get(get_generation).delete(delete_generation),
        )
        .route("/files/{id}/{name}", get(files::serve))
}

fn error(status: StatusCode, detail: &str) -> Response {
    json(status, &[], &json!({ "detail": detail }))
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Generation not found")
}

fn authorize(headers: &HeaderMap) -> Result<(), Response> {
    match check_auth(headers, &["Bearer"]) {
        Auth::Ok => Ok(()),
        Auth::Missing | Auth::Invalid => Err(error(
            StatusCode::UNAUTHORIZED,
            "Invalid API key is provided",
        )),
    }
}

/// The first invalid field of a create body, as a `detail` message.
fn invalid_field(body: &Value) -> Option<String> {
    let field = |k: &str| body.get(k).filter(|v| !v.is_null());
    let Some(model) = field("model") else {
        return Some("model: Field required".to_owned());
    };
    let one_of = |k: &str, allowed: &[&str], v: &Value| {
        (!v.as_str().is_some_and(|s| allowed.contains(&s))).then(|| {
            let quoted: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
            format!("{k}: Input should be {}", quoted.join(", "))
        })
    };
    if let Some(bad) = one_of("model", &MODELS, model) {
        return Some(bad);
    }
    for (k, allowed) in [
        ("aspect_ratio", &ASPECT_RATIOS[..]),
        ("resolution", &RESOLUTIONS[..]),
        ("duration", &DURATIONS[..]),
    ] {
        if let Some(bad) = field(k).and_then(|v| one_of(k, allowed, v)) {
            return Some(bad);
        }
    }
    let typed = |k: &str, ok: fn(&Value) -> bool, what: &str| {
        field(k)
            .filter(|v| !ok(v))
            .map(|_| format!("{k}: Input should be a valid {what}"))
    };
    typed("prompt", Value::is_string, "string")
        .or_else(|| typed("loop", Value::is_boolean, "boolean"))
        .or_else(|| typed("callback_url", Value::is_string, "URL"))
        .or_else(|| typed("keyframes", Value::is_object, "dictionary"))
}

/// Pixel size of an `aspect_ratio` at the requested `resolution` (720p when absent): the
/// shorter side is the resolution's height.
fn ratio_size(body: &Value) -> (u32, u32) {
    let (w, h) = body
        .get("aspect_ratio")
        .and_then(Value::as_str)
        .and_then(|r| r.split_once(':'))
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .unwrap_or((16, 9));
    let short = match body.get("resolution").and_then(Value::as_str) {
        Some("540p") => 540,
        Some("1080p") => 1080,
        Some("4k") => 2160,
        _ => 720,
    };
    let (w, h) = (w.max(1), h.max(1));
    if w >= h {
        (short * w / h, short)
    } else {
        (short, short * h / w)
    }
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
            return reject(error(
                StatusCode::BAD_REQUEST,
                "Request body must be a JSON object",
            ));
        }
    };
    let directives = Directives::scan_as(&body, crate::provider::Provider::Luma);
    if let Err(rejection) = admit(&state, P, &directives).await {
        return match rejection {
            Rejection::RateLimited | Rejection::Capacity => json(
                StatusCode::TOO_MANY_REQUESTS,
                &[("retry-after", "1".to_owned())],
                &json!({"detail": "Too many requests"}),
            ),
            Rejection::ServerError => {
                error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            }
        };
    }
    if let Some(message) = invalid_field(&body) {
        return reject(error(StatusCode::BAD_REQUEST, &message));
    }
    if directives.invalid {
        return reject(error(
            StatusCode::BAD_REQUEST,
            "prompt: Value error, invalid prompt (sim:invalid)",
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
    job.variant = "video".to_owned();
    job.webhook = body
        .get("callback_url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    if job.outcome == Outcome::Success {
        let base = state.base_url(P);
        let size = ratio_size(&body);
        // `duration`: "5s" or "9s", 5 s when absent.
        let seconds = body
            .get("duration")
            .and_then(Value::as_str)
            .and_then(|d| d.trim_end_matches('s').parse().ok())
            .unwrap_or(5);
        // One generation, one output: the video (`assets.video`); N clips are N generations.
        match state
            .files
            .generate_video(&base, &id, "video", 1, size, seconds)
        {
            Ok(outputs) => job.set_outputs(outputs),
            Err(_) => {
                return reject(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error",
                ));
            }
        }
    }
    let created = render(&job, Instant::now());
    state.jobs.insert(job);
    state
        .stats
        .record_create(P, &prompt_key(&body), state.inflight(P));
    driver::spawn(&state, P, &id, callbacks);
    if let Some(ms) = directives.hang_after_create_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(gateway) = crate::faults::after_create(&state, P, &directives) {
        return gateway;
    }
    json(StatusCode::CREATED, &[], &created)
}

/// The Generation object at `now`.
pub fn render(job: &Job, now: Instant) -> Value {
    let (state, failure_reason, assets) = match job.phase(now) {
        Phase::Queued => ("queued", Value::Null, Value::Null),
        Phase::Running => ("dreaming", Value::Null, Value::Null),
        Phase::Done(Outcome::Success) => {
            let url = |i: usize| job.outputs.get(i).map(|f| f.url.clone());
            ("completed", Value::Null, json!({"video": url(0)}))
        }
        Phase::Done(Outcome::EmptyOutput) => ("completed", Value::Null, json!({})),
        Phase::Done(Outcome::ContentPolicy) => ("failed", json!(MODERATION_REASON), Value::Null),
        Phase::Done(Outcome::Fail | Outcome::Invalid) => {
            ("failed", json!(FAIL_REASON), Value::Null)
        }
        // Deleted generations are never shown (404); a callback cannot see this either.
        Phase::Canceled => ("failed", json!("Generation was deleted"), Value::Null),
    };
    let mut request: serde_json::Map<String, Value> = job
        .input
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    request
        .entry("generation_type")
        .or_insert_with(|| json!("video"));
    json!({
        "id": job.id,
        "generation_type": "video",
        "state": state,
        "failure_reason": failure_reason,
        "created_at": rfc3339(job.created_wall, 3),
        "assets": assets,
        "model": job.model,
        "request": request,
    })
}

/// Callbacks of a phase change: one on `dreaming`, one on `completed` / `failed`.
fn callbacks(
    _state: &SimState,
    job: &Job,
    _from: Option<Phase>,
    to: Phase,
    now: Instant,
) -> Vec<Delivery> {
    let Some(url) = &job.webhook else {
        return Vec::new();
    };
    if !matches!(to, Phase::Running | Phase::Done(_)) {
        return Vec::new();
    }
    vec![Delivery {
        provider: P,
        url: url.clone(),
        body: render(job, now).to_string().into_bytes(),
        signing: Signing::None,
    }]
}

async fn get_generation(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = authorize(&headers) {
        return resp;
    }
    let Some(job) = state.jobs.get(P, &id).filter(|j| !j.deleted) else {
        return not_found();
    };
    state.stats.bump(P, Counter::Poll);
    if state.jobs.take_poll_error(P, &id) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service temporarily unavailable",
        );
    }
    json(StatusCode::OK, &[], &render(&job, Instant::now()))
}

/// `GET /generations?limit=&offset=`: `{generations, count, has_more, limit, offset}`, newest
/// first (lumalabs/lumaai-python `GenerationListResponse`; `limit` defaults to 10 here, at most
/// 100). Each Generation echoes its `request`, `callback_url` included.
async fn list_generations(
    State(state): State<Arc<SimState>>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = authorize(&headers) {
        return resp;
    }
    let number = |k: &str, d: usize| q.get(k).and_then(|v| v.parse::<usize>().ok()).unwrap_or(d);
    let (limit, offset) = (number("limit", 10).clamp(1, 100), number("offset", 0));
    let now = Instant::now();
    let all: Vec<_> = state
        .jobs
        .newest_first(P)
        .into_iter()
        .filter(|j| !j.deleted)
        .collect();
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|j| render(j, now))
        .collect();
    let has_more = all.len() > offset + page.len();
    json(
        StatusCode::OK,
        &[],
        &json!({"generations": page, "count": page.len(), "has_more": has_more, "limit": limit, "offset": offset}),
    )
}

async fn delete_generation(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = authorize(&headers) {
        return resp;
    }
    let deleted = state.jobs.update(P, &id, |job| {
        if job.deleted {
            return false;
        }
        // Stops the clock (and wakes the callback driver) if it was still running.
        job.cancel(Instant::now());
        job.deleted = true;
        true
    });
    if deleted != Some(true) {
        return not_found();
    }
    state.stats.bump(P, Counter::Cancel);
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn validates_the_create_body() {
        assert_eq!(
            invalid_field(&json!({"prompt": "x"})).as_deref(),
            Some("model: Field required")
        );
        assert!(
            invalid_field(&json!({"model": "ray-3"}))
                .unwrap()
                .starts_with("model: Input should be 'ray-1-6'")
        );
        assert_eq!(
            invalid_field(
                &json!({"model": "ray-2", "prompt": "x", "loop": null, "duration": "5s"})
            ),
            None
        );
        assert!(
            invalid_field(&json!({"model": "ray-2", "resolution": "8k"}))
                .unwrap()
                .starts_with("resolution: ")
        );
        assert!(
            invalid_field(&json!({"model": "ray-2", "loop": "yes"}))
                .unwrap()
                .starts_with("loop: ")
        );
        assert_eq!(ratio_size(&json!({"aspect_ratio": "9:16"})), (720, 1280));
        assert_eq!(
            ratio_size(&json!({"aspect_ratio": "16:9", "resolution": "1080p"})),
            (1920, 1080)
        );
    }
}
