//! Meshy simulator (`/meshy`), from `docs/providers/meshy.md`: `POST /openapi/v2/text-to-3d`
//! (`mode: "preview"` with `prompt`, or `"refine"` with `preview_task_id`) and
//! `POST /openapi/v1/image-to-3d` (`image_url`) answer `{"result": "<task id>"}`;
//! `GET {endpoint}/{id}` reports `status` PENDING (with `preceding_tasks`) → IN_PROGRESS
//! (`progress` 0–100) → **SUCCEEDED** (`model_urls{glb, fbx, usdz, obj, mtl}` — the GLB a
//! real 3 MB binary glTF, the others the same bytes under their names — `thumbnail_url`,
//! `texture_urls`: an **array** for text-to-3d, a single object for image-to-3d) or
//! **FAILED** (`task_error.message`) or **CANCELED** (one L); `DELETE {endpoint}/{id}`
//! cancels a pending or running task and deletes a finished one (200, later reads 404).
//! Timestamps are milliseconds, 0 while unset.
//!
//! Auth `Authorization: Bearer`; errors `{code, message}` with the codes the official MCP
//! server knows — which HTTP status goes with which code is UNCONFIRMED, as is the create
//! status (200 here) (402 for
//! `InsufficientCredits` is a guess).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::engine::{Answer, AuthScheme, Errors, Spec, text};
use crate::files;
use crate::jobs::{Job, Outcome, Phase};
use crate::media::{ImageKind, glb, photo};
use crate::provider::Provider;
use crate::state::SimState;

const P: Provider = Provider::Meshy;

/// The Meshy spec.
pub static SPEC: Spec = Spec {
    provider: P,
    auth: AuthScheme::Authorization(&["Bearer"]),
    errors: &Errors {
        unauthorized: Answer {
            status: 401,
            body: r#"{"code":"Unauthorized","message":"Invalid API key"}"#,
            headers: &[],
        },
        rate_limited: Answer {
            status: 429,
            body: r#"{"code":"LimitExceeded","message":"Too many requests. Please slow down."}"#,
            headers: &[("retry-after", "1")],
        },
        server_error: Answer {
            status: 500,
            body: r#"{"code":"InternalError","message":"Internal server error"}"#,
            headers: &[],
        },
        quota: Answer {
            status: 402,
            body: r#"{"code":"InsufficientCredits","message":"Insufficient credits to perform this task."}"#,
            headers: &[],
        },
        invalid: Answer {
            status: 400,
            body: r#"{"code":"InvalidModel:NotSupported","message":"Invalid request parameters (sim:invalid)"}"#,
            headers: &[],
        },
        content_policy: Answer {
            status: 400,
            body: r#"{"code":"Forbidden","message":"The prompt violates the content policy."}"#,
            headers: &[],
        },
        not_found: Answer {
            status: 404,
            body: r#"{"code":"NotFound","message":"Task not found"}"#,
            headers: &[],
        },
        poll_error: Answer {
            status: 503,
            body: r#"{"code":"InternalError","message":"Service temporarily unavailable"}"#,
            headers: &[],
        },
    },
    ok_headers: &[],
    request_id_header: None,
    extra: &[(
        "too_many_pending",
        Answer {
            status: 429,
            body: r#"{"code":"TooManyPendingTasks","message":"You have too many pending tasks. Please wait for them to finish."}"#,
            headers: &[],
        },
    )],
};

/// Routes under `/meshy`.
pub fn router() -> Router<Arc<SimState>> {
    let mut r = Router::new();
    for (path, kind) in [
        ("/openapi/v2/text-to-3d", "text-to-3d"),
        ("/openapi/v1/image-to-3d", "image-to-3d"),
    ] {
        r = r
            .route(
                path,
                post(move |s: State<Arc<SimState>>, h: HeaderMap, b: Bytes| create(kind, s, h, b)),
            )
            .route(
                &format!("{path}/{{id}}"),
                get(
                    move |s: State<Arc<SimState>>, p: Path<String>, h: HeaderMap| {
                        read(kind, s, p, h)
                    },
                )
                .delete(
                    move |s: State<Arc<SimState>>, p: Path<String>, h: HeaderMap| {
                        delete(kind, s, p, h)
                    },
                ),
            );
    }
    r.route("/files/{id}/{name}", get(files::serve))
}

async fn create(
    kind: &'static str,
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let call = match SPEC.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let b = &call.body;
    let valid = match kind {
        "text-to-3d" => match text(b, "mode") {
            Some("preview") => text(b, "prompt").is_some_and(|p| !p.is_empty()),
            Some("refine") => {
                text(b, "preview_task_id").is_some_and(|id| state.jobs.get(P, id).is_some())
            }
            _ => false,
        },
        _ => text(b, "image_url").is_some(),
    };
    if !valid {
        return SPEC.reject(&state, &SPEC.errors.invalid, &call.rid);
    }
    if let Some(resp) = SPEC.directed(&state, &call, false) {
        return resp;
    }
    let id = format!("0193{}", &crate::clock::uuid_v4()[4..]);
    let mut job = SPEC.job(
        &state,
        &call,
        id.clone(),
        text(b, "ai_model").unwrap_or("meshy-5"),
    );
    job.variant = kind.to_owned();
    if job.outcome == Outcome::Success {
        let base = state.base_url(P);
        let model = glb();
        let mut outs: Vec<_> = [
            ("model.glb", "model/gltf-binary"),
            ("model.fbx", "application/octet-stream"),
            ("model.usdz", "model/vnd.usdz+zip"),
            ("model.obj", "text/plain"),
            ("model.mtl", "text/plain"),
        ]
        .into_iter()
        .map(|(name, ct)| {
            state
                .files
                .put_shared(&base, &id, name, ct, model.clone(), (0, 0))
        })
        .collect();
        match photo(512, 512, ImageKind::Png) {
            Ok(png) => {
                outs.push(state.files.put_shared(
                    &base,
                    &id,
                    "preview.png",
                    "image/png",
                    png.clone(),
                    (512, 512),
                ));
                outs.push(state.files.put_shared(
                    &base,
                    &id,
                    "texture_0.png",
                    "image/png",
                    png,
                    (512, 512),
                ));
            }
            Err(_) => return SPEC.reject(&state, &SPEC.errors.server_error, &call.rid),
        }
        job.set_outputs(outs);
    }
    if let Some(gateway) = SPEC.created(&state, job, None).await {
        return gateway;
    }
    SPEC.ok(StatusCode::OK, &call.rid, &json!({"result": id}))
}

fn ms(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The task object at `now`.
pub fn render(job: &Job, now: Instant) -> Value {
    let created = ms(job.created_wall);
    let started = job.started_wall(now).map_or(0, ms);
    let finished = job
        .terminal_after(now)
        .map_or(0, |d| created + d.as_millis());
    let url = |name: &str| {
        job.outputs
            .iter()
            .find(|f| f.file_name == name)
            .map(|f| f.url.clone())
    };
    let mut out = json!({"id": job.id, "type": format!("{}-{}", job.variant, text(&job.input, "mode").unwrap_or("preview")).replace("image-to-3d-preview", "image-to-3d"),
        "mode": job.input.get("mode"), "prompt": job.input.get("prompt").cloned().unwrap_or(json!("")), "art_style": "realistic",
        "model_urls": {}, "thumbnail_url": "", "video_url": "", "texture_urls": [], "progress": 0,
        "created_at": created, "started_at": started, "finished_at": finished, "preceding_tasks": 0, "task_error": {"message": ""}});
    let status = match job.phase(now) {
        Phase::Queued => {
            out["preceding_tasks"] = json!(2);
            "PENDING"
        }
        Phase::Running => {
            out["progress"] = json!((job.progress(now) * 99.0).floor() as u64);
            "IN_PROGRESS"
        }
        Phase::Done(Outcome::Success) => {
            out["progress"] = json!(100);
            out["model_urls"] = json!({"glb": url("model.glb"), "fbx": url("model.fbx"), "usdz": url("model.usdz"), "obj": url("model.obj"), "mtl": url("model.mtl")});
            out["thumbnail_url"] = json!(url("preview.png"));
            let texture = json!({"base_color": url("texture_0.png")});
            out["texture_urls"] = if job.variant == "image-to-3d" {
                texture
            } else {
                json!([texture])
            };
            "SUCCEEDED"
        }
        Phase::Done(Outcome::EmptyOutput) => {
            out["progress"] = json!(100);
            "SUCCEEDED"
        }
        Phase::Done(Outcome::ContentPolicy) => {
            out["task_error"] = json!({"message": "The input was rejected by content moderation."});
            "FAILED"
        }
        Phase::Done(_) => {
            out["task_error"] =
                json!({"message": "Task failed due to an internal error. Please retry."});
            "FAILED"
        }
        Phase::Canceled => "CANCELED",
    };
    out["status"] = json!(status);
    out
}

async fn read(
    kind: &'static str,
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match SPEC.read(&state, &headers, &id) {
        Ok(job) if job.variant == kind && !job.deleted => {
            SPEC.ok(StatusCode::OK, "", &render(&job, Instant::now()))
        }
        Ok(_) => SPEC.errors.not_found.render(""),
        Err(resp) => resp,
    }
}

async fn delete(
    kind: &'static str,
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if state
        .jobs
        .get(P, &id)
        .is_none_or(|j| j.variant != kind || j.deleted)
    {
        if let Err(resp) = SPEC.authorize(&headers) {
            return resp;
        }
        return SPEC.errors.not_found.render("");
    }
    match SPEC.cancel(&state, &headers, &id) {
        Ok((_, true)) => SPEC.ok(StatusCode::OK, "", &json!({})),
        Ok((_, false)) => {
            state.jobs.update(P, &id, |j| j.deleted = true);
            SPEC.ok(StatusCode::OK, "", &json!({}))
        }
        Err(resp) => resp,
    }
}
