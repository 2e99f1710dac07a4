//! Sora video (deprecated by OpenAI, sunset 2026-09-24): `POST /v1/videos` (JSON or
//! multipart; `prompt` required, `model` `sora-2` | `sora-2-pro`, `seconds` a **string**
//! `"4"` | `"8"` | `"12"`, `size` `720x1280` | `1280x720` | `1024x1792` | `1792x1024`) → 200
//! `Video` `queued`; `GET /v1/videos/{id}` → `queued` → `in_progress` (`progress` %) →
//! **`completed`** or **`failed`** (`error{code, message}`), every read with the
//! `openai-poll-after-ms` header the SDK's `poll()` sleeps on; `GET /v1/videos/{id}/content`
//! (`?variant=video|thumbnail`) → `video/mp4` (or `image/webp`) bytes; `DELETE` → `{id,
//! object: "video.deleted", deleted: true}` for finished videos (no cancel exists).
//! `sim:content_policy` fails the job with `error.code: "moderation_blocked"` (wording
//! UNCONFIRMED); `sim:content_unavailable` completes it but makes `/content` answer the
//! documented 403 "Files … are not accessible". Video jobs are not counted in OpenAI's
//! in-flight stat (it counts the immediate requests).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{P, admit_body, authorize, begin, error, invalid, ok};
use crate::clock::{request_id, unix_seconds};
use crate::jobs::{Job, Outcome, Phase};
use crate::media::{ImageKind, photo};
use crate::reply::header as header_of;
use crate::state::SimState;
use crate::stats::Counter;

const SIZES: [&str; 4] = ["720x1280", "1280x720", "1024x1792", "1792x1024"];

fn not_found(rid: &str, id: &str) -> Response {
    error(
        rid,
        StatusCode::NOT_FOUND,
        &format!("Video with id '{id}' not found."),
        "invalid_request_error",
        None,
        None,
    )
}

pub(in crate::openai) async fn create(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let started = SystemTime::now();
    let multipart =
        header_of(&headers, "content-type").is_some_and(|c| c.starts_with("multipart/"));
    let call = if multipart {
        let rid = request_id();
        if let Err(resp) = authorize(&state, &headers, &rid) {
            return resp;
        }
        let Some((fields, _)) = crate::engine::form_body(&headers, &raw) else {
            return invalid(&rid, "Invalid multipart body.", None, None);
        };
        admit_body(&state, rid, fields).await
    } else {
        begin(&state, &headers, &raw).await
    };
    let call = match call {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let (rid, body) = (&call.rid, &call.body);
    let reject = |resp: Response| {
        state.stats.bump(P, Counter::CreateRejection);
        resp
    };
    let field = |k: &str| body.get(k).and_then(Value::as_str);
    if field("prompt").is_none_or(str::is_empty) {
        return reject(invalid(
            rid,
            "Missing required parameter: 'prompt'.",
            Some("prompt"),
            Some("missing_required_parameter"),
        ));
    }
    let model = field("model").unwrap_or("sora-2").to_owned();
    let seconds = match body.get("seconds") {
        None => "4".to_owned(),
        Some(Value::String(s)) if ["4", "8", "12"].contains(&s.as_str()) => s.clone(),
        Some(_) => {
            return reject(invalid(
                rid,
                "Invalid value for 'seconds': expected one of '4', '8', '12'.",
                Some("seconds"),
                Some("invalid_value"),
            ));
        }
    };
    let size = field("size").unwrap_or("720x1280").to_owned();
    if !SIZES.contains(&size.as_str()) {
        return reject(invalid(
            rid,
            &format!(
                "Invalid value: '{size}'. Supported values are: '720x1280', '1280x720', '1024x1792', and '1792x1024'."
            ),
            Some("size"),
            Some("invalid_value"),
        ));
    }
    if call.directives.invalid {
        return reject(invalid(
            rid,
            "Invalid value for 'prompt' (sim:invalid).",
            Some("prompt"),
            Some("invalid_value"),
        ));
    }
    let id = format!("video_{}", ulid::Ulid::new().to_string().to_lowercase());
    let mut job = Job::new(
        P,
        id.clone(),
        body.clone(),
        call.directives.clone(),
        state.job_duration(call.directives.duration_ms),
    );
    job.model = model;
    job.variant = format!("{seconds}|{size}");
    if job.outcome == Outcome::Success {
        let dims = crate::engine::size_of(Some(&size), (720, 1280));
        let made = state.files.generate_video(
            &state.base_url(P),
            &id,
            "video",
            1,
            dims,
            seconds.parse().unwrap_or(4),
        );
        let thumb = photo(dims.0 / 2, dims.1 / 2, ImageKind::Webp);
        match (made, thumb) {
            (Ok(mut out), Ok(t)) => {
                out.push(state.files.put_shared(
                    &state.base_url(P),
                    &id,
                    "thumbnail.webp",
                    "image/webp",
                    t,
                    (dims.0 / 2, dims.1 / 2),
                ));
                job.set_outputs(out);
            }
            _ => {
                return reject(error(
                    rid,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    super::SERVER_ERROR,
                    "server_error",
                    None,
                    None,
                ));
            }
        }
    }
    let created = render(&job, Instant::now());
    state.jobs.insert(job);
    state
        .stats
        .record_create(P, &crate::directives::prompt_key(body), 0);
    if let Some(gateway) = crate::faults::after_create(&state, P, &call.directives) {
        return gateway;
    }
    ok(rid, started, &created)
}

/// The `Video` object at `now`.
pub fn render(job: &Job, now: Instant) -> Value {
    let (seconds, size) = job.variant.split_once('|').unwrap_or(("4", "720x1280"));
    let created = unix_seconds(job.created_wall);
    let mut out = json!({"id": job.id, "object": "video", "model": job.model, "status": "queued", "progress": 0,
        "created_at": created, "completed_at": null, "expires_at": null, "prompt": job.input.get("prompt"),
        "size": size, "seconds": seconds, "remixed_from_video_id": null, "error": null});
    let status = match job.phase(now) {
        Phase::Queued => "queued",
        Phase::Running => {
            out["progress"] = json!((job.progress(now) * 100.0) as u64);
            "in_progress"
        }
        Phase::Done(o) if o.is_success() => {
            let done = created + job.duration.as_secs();
            out["progress"] = json!(100);
            out["completed_at"] = json!(done);
            out["expires_at"] = json!(done + 3600);
            "completed"
        }
        Phase::Done(Outcome::ContentPolicy) => {
            out["error"] = json!({"code": "moderation_blocked", "message": "Your request was blocked by our moderation system."});
            "failed"
        }
        Phase::Done(_) | Phase::Canceled => {
            out["error"] = json!({"code": "video_generation_failed", "message": "Video generation failed. Please try again."});
            "failed"
        }
    };
    out["status"] = json!(status);
    out
}

fn owned(state: &SimState, headers: &HeaderMap, id: &str) -> Result<Job, Response> {
    let rid = request_id();
    authorize(state, headers, &rid)?;
    state
        .jobs
        .get(P, id)
        .filter(|j| !j.deleted)
        .ok_or_else(|| not_found(&rid, id))
}

pub(in crate::openai) async fn read(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = owned(&state, &headers, &id) {
        return resp;
    }
    state.stats.bump(P, Counter::Poll);
    let rid = request_id();
    if state.jobs.take_poll_error(P, &id) {
        return error(
            &rid,
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is overloaded or not ready yet.",
            "server_error",
            None,
            None,
        );
    }
    let Some(job) = state.jobs.get(P, &id) else {
        return not_found(&rid, &id);
    };
    let mut resp = ok(&rid, SystemTime::now(), &render(&job, Instant::now()));
    crate::reply::add_headers(&mut resp, &[("openai-poll-after-ms", "200".to_owned())]);
    resp
}

pub(in crate::openai) async fn content(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let job = match owned(&state, &headers, &id) {
        Ok(j) => j,
        Err(resp) => return resp,
    };
    let rid = request_id();
    let done = job.phase(Instant::now()) == Phase::Done(Outcome::Success);
    if !done || job.directives.has("content_unavailable") {
        let msg = if done {
            format!("Files [file_{}] are not accessible", &job.id[6..])
        } else {
            "Video is not ready yet, use GET /v1/videos/{video_id} to check status.".to_owned()
        };
        return error(
            &rid,
            if done {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::NOT_FOUND
            },
            &msg,
            "invalid_request_error",
            None,
            None,
        );
    }
    let name = match q.get("variant").map(String::as_str) {
        None | Some("video") => "video-0.mp4",
        Some("thumbnail") => "thumbnail.webp",
        Some(other) => {
            return invalid(
                &rid,
                &format!("Invalid value: '{other}'."),
                Some("variant"),
                Some("invalid_value"),
            );
        }
    };
    state.stats.bump(P, Counter::ResultFetch);
    match state.files.get(&id, name) {
        Some((ct, bytes)) => ([(header::CONTENT_TYPE, ct)], bytes).into_response(),
        None => not_found(&rid, &id),
    }
}

pub(in crate::openai) async fn delete(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let job = match owned(&state, &headers, &id) {
        Ok(j) => j,
        Err(resp) => return resp,
    };
    let rid = request_id();
    if !job.phase(Instant::now()).is_terminal() {
        return invalid(
            &rid,
            "Only completed or failed videos can be deleted.",
            None,
            None,
        );
    }
    state.jobs.update(P, &id, |j| j.deleted = true);
    state.stats.bump(P, Counter::Cancel);
    ok(
        &rid,
        SystemTime::now(),
        &json!({"id": id, "object": "video.deleted", "deleted": true}),
    )
}
