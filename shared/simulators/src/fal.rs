//! fal simulator (`/fal`), the queue API: `POST /{model_id…}` submits (`?fal_webhook=<url>` for
//! a signed callback), `GET /{app}/requests/{id}/status` polls (IN_QUEUE / IN_PROGRESS /
//! COMPLETED, possibly with `error`), `GET /{app}/requests/{id}` returns the model output,
//! `PUT /{app}/requests/{id}/cancel` cancels. Auth is `Authorization: Key …`; errors are
//! `{detail, error_type}` with `X-Fal-Error-Type`. The webhook public key is served as a JWKS
//! at `/fal/.well-known/jwks.json`.

mod render;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use serde_json::{Value, json};

pub use render::{DEFAULT_SEED, app_id};

use crate::clock::uuid_v4;
use crate::directives::{Directives, prompt_key};
use crate::driver;
use crate::faults::{Rejection, admit};
use crate::files::{self, MediaKind};
use crate::jobs::{Job, Outcome};
use crate::provider::Provider;
use crate::reply::{Auth, check_auth, json, parse_body};
use crate::state::SimState;
use crate::stats::Counter;

const P: Provider = Provider::Fal;

/// Routes under `/fal`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/files/{id}/{name}", get(files::serve))
        .route("/{*path}", get(read).post(submit).put(cancel))
}

/// A request/infrastructure error `{detail, error_type}` with `X-Fal-Error-Type`.
fn error(status: StatusCode, detail: &str, kind: Option<&str>) -> Response {
    match kind {
        Some(kind) => json(
            status,
            &[("x-fal-error-type", kind.to_owned())],
            &json!({"detail": detail, "error_type": kind}),
        ),
        None => json(status, &[], &json!({"detail": detail})),
    }
}

fn authorize(headers: &HeaderMap) -> Result<(), Response> {
    match check_auth(headers, &["Key"]) {
        Auth::Ok => Ok(()),
        Auth::Missing => Err(error(
            StatusCode::UNAUTHORIZED,
            "Missing authorization header. Use 'Authorization: Key <FAL_KEY>'.",
            None,
        )),
        Auth::Invalid => Err(error(
            StatusCode::UNAUTHORIZED,
            "No user found for Key ID and Secret",
            None,
        )),
    }
}

async fn jwks(State(state): State<Arc<SimState>>) -> Response {
    json(StatusCode::OK, &[], &state.fal_signer.jwks())
}

/// `(request id, tail segments)` of `…/requests/{id}[/tail…]`.
fn request_path(path: &str) -> Option<(String, Vec<String>)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let at = segments.iter().rposition(|s| *s == "requests")?;
    let id = segments.get(at + 1)?;
    Some((
        (*id).to_owned(),
        segments[at + 2..].iter().map(|s| (*s).to_owned()).collect(),
    ))
}

/// Pixel size of fal's `image_size` (preset name or `{width, height}`).
fn image_size(input: &Value) -> (u32, u32) {
    let dim = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    match input.get("image_size") {
        Some(Value::String(preset)) => match preset.as_str() {
            "square_hd" => (1024, 1024),
            "square" => (512, 512),
            "portrait_4_3" => (768, 1024),
            "portrait_16_9" => (576, 1024),
            "landscape_16_9" => (1024, 576),
            _ => (1024, 768),
        },
        Some(obj @ Value::Object(_)) => (
            dim(obj, "width").unwrap_or(1024),
            dim(obj, "height").unwrap_or(768),
        ),
        _ => (1024, 768),
    }
}

async fn submit(
    State(state): State<Arc<SimState>>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let reject = |resp: Response| {
        state.stats.bump(P, Counter::CreateRejection);
        resp
    };
    if let Err(resp) = authorize(&headers) {
        return reject(resp);
    }
    let model = path.trim_matches('/').to_owned();
    if model.split('/').count() < 2 || request_path(&model).is_some() {
        return reject(error(StatusCode::NOT_FOUND, "Application not found", None));
    }
    let input = match parse_body(&raw) {
        Ok(b) if b.is_object() => b,
        _ => {
            return reject(json(
                StatusCode::UNPROCESSABLE_ENTITY,
                &[],
                &json!({"detail": [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]}),
            ));
        }
    };
    let directives = Directives::scan_as(&input, crate::provider::Provider::Fal);
    if let Err(rejection) = admit(&state, P, &directives).await {
        return match rejection {
            Rejection::RateLimited | Rejection::Capacity => {
                let mut resp = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many requests. Please retry later.",
                    Some("rate_limited"),
                );
                crate::reply::add_headers(&mut resp, &[("retry-after", "1".to_owned())]);
                resp
            }
            Rejection::ServerError => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
                Some("internal_error"),
            ),
        };
    }
    let id = uuid_v4();
    let mut job = Job::new(
        P,
        id.clone(),
        input.clone(),
        directives.clone(),
        state.job_duration(directives.duration_ms),
    );
    job.outcome = crate::faults::job_outcome(&state, P, &directives, job.outcome);
    job.model = app_id(&model);
    job.variant = model;
    job.webhook = query.get("fal_webhook").cloned();
    if job.outcome == Outcome::Success {
        let count = input
            .get("num_images")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .clamp(1, 4) as usize;
        let kind = MediaKind::guess(&job.variant);
        let kind = if kind == MediaKind::Text {
            MediaKind::Image
        } else {
            kind
        };
        match state.files.generate(
            &state.base_url(P),
            &id,
            "out",
            kind,
            count,
            image_size(&input),
        ) {
            Ok(outputs) => job.set_outputs(outputs),
            Err(_) => {
                return reject(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error",
                    Some("internal_error"),
                ));
            }
        }
    }
    let body = render::submitted(&state, &job);
    state.jobs.insert(job);
    state
        .stats
        .record_create(P, &prompt_key(&input), state.inflight(P));
    driver::spawn(&state, P, &id, render::webhooks);
    if let Some(ms) = directives.hang_after_create_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(gateway) = crate::faults::after_create(&state, P, &directives) {
        return gateway;
    }
    json(StatusCode::OK, &[("x-fal-request-id", id)], &body)
}

async fn read(
    State(state): State<Arc<SimState>>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some((id, tail)) = request_path(&path) else {
        return error(StatusCode::NOT_FOUND, "Not found", None);
    };
    if let Err(resp) = authorize(&headers) {
        return resp;
    }
    let Some(job) = state.jobs.get(P, &id) else {
        return error(StatusCode::NOT_FOUND, "Request not found", None);
    };
    let now = Instant::now();
    match tail.as_slice() {
        [] => {
            state.stats.bump(P, Counter::ResultFetch);
            if !job.phase(now).is_terminal() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Request is still in progress",
                    None,
                );
            }
            let (status, body, kind) = render::result(&job, now);
            let headers: Vec<(&'static str, String)> = kind
                .map(|k| ("x-fal-error-type", k.to_owned()))
                .into_iter()
                .collect();
            json(status, &headers, &body)
        }
        [s] if s == "status" => {
            state.stats.bump(P, Counter::Poll);
            if state.jobs.take_poll_error(P, &id) {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service temporarily unavailable",
                    None,
                );
            }
            let logs = query.get("logs").is_some_and(|v| v == "1" || v == "true");
            json(
                StatusCode::OK,
                &[],
                &render::status(&state, &job, now, logs),
            )
        }
        _ => error(StatusCode::NOT_FOUND, "Not found", None),
    }
}

async fn cancel(
    State(state): State<Arc<SimState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some((id, _)) = request_path(&path).filter(|(_, t)| t.len() == 1 && t[0] == "cancel")
    else {
        return error(StatusCode::NOT_FOUND, "Not found", None);
    };
    if let Err(resp) = authorize(&headers) {
        return resp;
    }
    match state.jobs.update(P, &id, |j| j.cancel(Instant::now())) {
        None => error(StatusCode::NOT_FOUND, "Request not found", None),
        Some(changed) => {
            state.stats.bump(P, Counter::Cancel);
            if changed {
                json(
                    StatusCode::ACCEPTED,
                    &[],
                    &json!({"status": "CANCELLATION_REQUESTED"}),
                )
            } else {
                json(
                    StatusCode::BAD_REQUEST,
                    &[],
                    &json!({"status": "ALREADY_COMPLETED"}),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn splits_request_paths() {
        let (id, tail) = request_path("fal-ai/flux/requests/abc/status").unwrap();
        assert_eq!((id.as_str(), tail), ("abc", vec!["status".to_owned()]));
        assert!(request_path("fal-ai/flux/dev").is_none());
        assert_eq!(app_id("fal-ai/flux/dev"), "fal-ai/flux");
        assert_eq!(
            image_size(&json!({"image_size": {"width": 640, "height": 480}})),
            (640, 480)
        );
    }
}
