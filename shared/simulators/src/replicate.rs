//! Replicate simulator (`/replicate`): `POST /v1/predictions` (`{version, input, webhook?,
//! webhook_events_filter?}`), `POST /v1/models/{owner}/{name}/predictions` (and deployments),
//! `GET /v1/predictions/{id}`, `POST /v1/predictions/{id}/cancel`,
//! `GET /v1/webhooks/default/secret`. Creates answer 201 and honour `Prefer: wait[=N]`; errors
//! are `application/problem+json`; webhooks are signed with Standard Webhooks.

mod create;
mod prediction;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;

pub use prediction::{FAIL_MESSAGE, NSFW_MESSAGE, render};

use crate::files;
use crate::provider::Provider;
use crate::reply::{Auth, add_headers, check_auth, json};
use crate::state::SimState;
use crate::stats::Counter;

const P: Provider = Provider::Replicate;
const EVENTS: [&str; 4] = ["start", "output", "logs", "completed"];

/// Routes under `/replicate`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/predictions", post(create::create_versioned))
        .route(
            "/v1/models/{owner}/{name}/predictions",
            post(create::create_official),
        )
        .route(
            "/v1/deployments/{owner}/{name}/predictions",
            post(create::create_official),
        )
        .route("/v1/predictions/{id}", get(get_prediction))
        .route("/v1/predictions/{id}/cancel", post(cancel))
        .route("/v1/webhooks/default/secret", get(secret))
        .route("/files/{id}/{name}", get(files::serve))
}

/// An RFC 7807 problem (`title` omitted when `None`).
fn problem(status: StatusCode, title: Option<&str>, detail: &str) -> Response {
    let mut body = json!({"detail": detail, "status": status.as_u16()});
    if let Some(title) = title {
        body["title"] = json!(title);
    }
    let mut headers = vec![("content-type", "application/problem+json".to_owned())];
    if status == StatusCode::TOO_MANY_REQUESTS {
        headers.push(("retry-after", "1".to_owned()));
    }
    json(status, &headers, &body)
}

fn unprocessable(detail: &str, field: &str, kind: &str) -> Response {
    let body = json!({"title": "Input validation failed", "detail": detail, "status": 422,
        "invalid_fields": [{"type": kind, "field": field, "description": detail.trim_start_matches("- ")}]});
    json(
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("content-type", "application/problem+json".to_owned())],
        &body,
    )
}

fn authorize(headers: &HeaderMap) -> Result<(), Response> {
    match check_auth(headers, &["Bearer", "Token"]) {
        Auth::Ok => Ok(()),
        Auth::Missing | Auth::Invalid => Err(problem(
            StatusCode::UNAUTHORIZED,
            Some("Unauthenticated"),
            "You did not pass a valid authentication token",
        )),
    }
}

fn with_rate_headers(mut resp: Response, remaining: u32) -> Response {
    add_headers(
        &mut resp,
        &[
            ("ratelimit-remaining", remaining.to_string()),
            ("ratelimit-reset", "1".to_owned()),
        ],
    );
    resp
}

async fn get_prediction(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = authorize(&headers) {
        return resp;
    }
    let Some(job) = state.jobs.get(P, &id) else {
        return problem(StatusCode::NOT_FOUND, Some("Not found"), "Not found.");
    };
    state.stats.bump(P, Counter::Poll);
    if state.jobs.take_poll_error(P, &id) {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("Service Unavailable"),
            "The service is temporarily unavailable. Please retry.",
        );
    }
    with_rate_headers(
        json(StatusCode::OK, &[], &render(&state, &job, Instant::now())),
        59_999,
    )
}

async fn cancel(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = authorize(&headers) {
        return resp;
    }
    if state
        .jobs
        .update(P, &id, |j| j.cancel(Instant::now()))
        .is_none()
    {
        return problem(StatusCode::NOT_FOUND, Some("Not found"), "Not found.");
    }
    state.stats.bump(P, Counter::Cancel);
    let Some(job) = state.jobs.get(P, &id) else {
        return problem(StatusCode::NOT_FOUND, Some("Not found"), "Not found.");
    };
    with_rate_headers(
        json(StatusCode::OK, &[], &render(&state, &job, Instant::now())),
        2_999,
    )
}

async fn secret(State(state): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    if let Err(resp) = authorize(&headers) {
        return resp;
    }
    json(
        StatusCode::OK,
        &[],
        &json!({"key": state.config.replicate_webhook_secret}),
    )
}
