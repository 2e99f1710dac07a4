//! OpenAI simulator (`/openai`): text to speech (`POST /v1/audio/speech`, audio bytes),
//! transcription (`POST /v1/audio/transcriptions`, multipart, two `usage` shapes), Sora
//! video (`/v1/videos` polled, `/content` download; see `videos`), `POST /v1/images/generations` (GPT image models answer
//! `b64_json` with token `usage`; dall-e models answer `url`s served here unless
//! `response_format` is `b64_json`) and `POST /v1/chat/completions`. Errors use the
//! `{"error":{message,type,param,code}}` envelope; every answer carries `x-request-id` and the
//! `x-ratelimit-*` headers. Calls are immediate, so `sim:fail` is an immediate 500.

mod audio;
mod chat;
mod images;
mod videos;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::clock::request_id;
use crate::directives::{Directives, prompt_key};
use crate::faults::{Rejection, admit};
use crate::files;
use crate::provider::Provider;
use crate::reply::{Auth, check_auth, json, parse_body};
use crate::state::{InflightGuard, SimState};
use crate::stats::Counter;

const P: Provider = Provider::OpenAi;
const SERVER_ERROR: &str =
    "The server had an error while processing your request. Sorry about that!";

/// Routes under `/openai`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/images/generations", post(images::images))
        .route("/v1/chat/completions", post(chat::chat))
        .route("/v1/audio/speech", post(audio::speech))
        .route("/v1/audio/transcriptions", post(audio::transcriptions))
        .route("/v1/videos", post(videos::create))
        .route("/v1/videos/{id}", get(videos::read).delete(videos::delete))
        .route("/v1/videos/{id}/content", get(videos::content))
        .route("/files/{id}/{name}", get(files::serve))
}

/// An error in OpenAI's envelope.
fn error(
    rid: &str,
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    let mut headers = vec![("x-request-id", rid.to_owned())];
    if status == StatusCode::TOO_MANY_REQUESTS && kind == "requests" {
        headers.extend([
            ("retry-after", "1".to_owned()),
            ("retry-after-ms", "1000".to_owned()),
            ("x-ratelimit-limit-requests", "500".to_owned()),
            ("x-ratelimit-remaining-requests", "0".to_owned()),
            ("x-ratelimit-reset-requests", "1s".to_owned()),
            ("x-ratelimit-limit-tokens", "30000".to_owned()),
            ("x-ratelimit-remaining-tokens", "0".to_owned()),
            ("x-ratelimit-reset-tokens", "1s".to_owned()),
        ]);
    }
    json(status, &headers, &body)
}

fn invalid(rid: &str, message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    error(
        rid,
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        param,
        code,
    )
}

fn ok(rid: &str, started: SystemTime, body: &Value) -> Response {
    let ms = started.elapsed().map_or(0, |d| d.as_millis());
    let headers = [
        ("x-request-id", rid.to_owned()),
        ("openai-processing-ms", ms.to_string()),
        ("openai-version", "2020-10-01".to_owned()),
        ("openai-organization", "org-sim".to_owned()),
        ("x-ratelimit-limit-requests", "500".to_owned()),
        ("x-ratelimit-remaining-requests", "499".to_owned()),
        ("x-ratelimit-reset-requests", "120ms".to_owned()),
        ("x-ratelimit-limit-tokens", "30000".to_owned()),
        ("x-ratelimit-remaining-tokens", "29000".to_owned()),
        ("x-ratelimit-reset-tokens", "2s".to_owned()),
    ];
    json(StatusCode::OK, &headers, body)
}

/// An admitted call: parsed body, directives and the inflight guard.
struct Call {
    rid: String,
    body: Value,
    directives: Directives,
    _guard: InflightGuard,
}

/// Auth, JSON parsing and the admission gate, shared by both endpoints.
async fn begin(state: &Arc<SimState>, headers: &HeaderMap, raw: &[u8]) -> Result<Call, Response> {
    let rid = request_id();
    let rejected = |resp: Response| {
        state.stats.bump(P, Counter::CreateRejection);
        resp
    };
    match check_auth(headers, &["Bearer"]) {
        Auth::Ok => {}
        Auth::Missing => {
            let msg = "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).";
            return Err(rejected(error(
                &rid,
                StatusCode::UNAUTHORIZED,
                msg,
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            )));
        }
        Auth::Invalid => {
            let msg = "Incorrect API key provided: invalid***. You can find your API key at https://platform.openai.com/account/api-keys.";
            return Err(rejected(error(
                &rid,
                StatusCode::UNAUTHORIZED,
                msg,
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            )));
        }
    }
    let Ok(body) = parse_body(raw) else {
        let msg = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)";
        return Err(rejected(invalid(&rid, msg, None, None)));
    };
    admit_body(state, rid, body).await
}

/// Auth only (multipart endpoints parse their own body, then call [`admit_body`]).
fn authorize(state: &SimState, headers: &HeaderMap, rid: &str) -> Result<(), Response> {
    if check_auth(headers, &["Bearer"]) == Auth::Ok {
        return Ok(());
    }
    state.stats.bump(P, Counter::CreateRejection);
    let msg = "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).";
    Err(error(
        rid,
        StatusCode::UNAUTHORIZED,
        msg,
        "invalid_request_error",
        None,
        Some("invalid_api_key"),
    ))
}

/// The admission gate for a parsed body: the requests-per-minute 429 (`sim:rate_limit`,
/// with `retry-after` and the `x-ratelimit-*-requests` headers), the tokens-per-minute 429
/// (`sim:rate_limit_tokens=N`: `type: "tokens"`, the wait **only in the message**, no
/// `retry-after`), 5xx, and the quota 429 (no `retry-after`).
async fn admit_body(state: &Arc<SimState>, rid: String, body: Value) -> Result<Call, Response> {
    let rejected = |resp: Response| {
        state.stats.bump(P, Counter::CreateRejection);
        resp
    };
    let directives = Directives::scan_as(&body, crate::provider::Provider::OpenAi);
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("gpt-image-1")
        .to_owned();
    if let Err(rejection) = admit(state, P, &directives).await {
        return Err(match rejection {
            Rejection::RateLimited | Rejection::Capacity => {
                let msg = format!(
                    "Rate limit reached for {model} in organization org-sim on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 1s. Visit https://platform.openai.com/account/rate-limits to learn more."
                );
                error(
                    &rid,
                    StatusCode::TOO_MANY_REQUESTS,
                    &msg,
                    "requests",
                    None,
                    Some("rate_limit_exceeded"),
                )
            }
            Rejection::ServerError => error(
                &rid,
                StatusCode::INTERNAL_SERVER_ERROR,
                SERVER_ERROR,
                "server_error",
                None,
                None,
            ),
        });
    }
    if let Some(n) = directives.extra("rate_limit_tokens") {
        let times = n.and_then(|v| v.parse().ok()).unwrap_or(1);
        if state
            .faults
            .take(P, "rate_limit_tokens", &prompt_key(&body), times)
        {
            let msg = format!(
                "Rate limit reached for {model} in organization org-sim on tokens per min (TPM): Limit 30000, Used 29100, Requested 1500. Please try again in 1.2s. Visit https://platform.openai.com/account/rate-limits to learn more."
            );
            let mut resp = error(
                &rid,
                StatusCode::TOO_MANY_REQUESTS,
                &msg,
                "tokens",
                None,
                Some("rate_limit_exceeded"),
            );
            crate::reply::add_headers(
                &mut resp,
                &[
                    ("x-ratelimit-limit-requests", "500".to_owned()),
                    ("x-ratelimit-remaining-requests", "499".to_owned()),
                    ("x-ratelimit-limit-tokens", "30000".to_owned()),
                    ("x-ratelimit-remaining-tokens", "0".to_owned()),
                    ("x-ratelimit-reset-tokens", "1.2s".to_owned()),
                ],
            );
            return Err(rejected(resp));
        }
    }
    if directives.insufficient_quota {
        let msg = "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.";
        return Err(rejected(error(
            &rid,
            StatusCode::TOO_MANY_REQUESTS,
            msg,
            "insufficient_quota",
            None,
            Some("insufficient_quota"),
        )));
    }
    let (guard, _) = state.openai_request();
    Ok(Call {
        rid,
        body,
        directives,
        _guard: guard,
    })
}

/// Common failures chosen by directives, after validation.
fn directed_failure(state: &SimState, call: &Call, safety: Response) -> Option<Response> {
    let d = &call.directives;
    let resp = if d.invalid {
        invalid(
            &call.rid,
            "Invalid value: 'sim:invalid'. Supported values are: 'low', 'medium', 'high', and 'auto'.",
            Some("quality"),
            Some("invalid_value"),
        )
    } else if d.content_policy {
        safety
    } else if d.fail {
        error(
            &call.rid,
            StatusCode::INTERNAL_SERVER_ERROR,
            SERVER_ERROR,
            "server_error",
            None,
            None,
        )
    } else {
        return None;
    };
    state.stats.bump(P, Counter::CreateRejection);
    Some(resp)
}

/// Records the accepted call and applies `sim:duration` as processing time.
async fn accept(state: &SimState, call: &Call) {
    state
        .stats
        .record_create(P, &prompt_key(&call.body), state.inflight(P));
    if let Some(ms) = call.directives.duration_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
