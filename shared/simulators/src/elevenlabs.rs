//! ElevenLabs simulator (`/elevenlabs`), text to speech:
//! `POST /v1/text-to-speech/{voice_id}` (and `/stream`) answers the audio bytes
//! (`?output_format=`, default `mp3_44100_128` → `audio/mpeg`);
//! `POST /v1/text-to-speech/{voice_id}/with-timestamps` answers
//! `{audio_base64, alignment, normalized_alignment}` with per-character times. The key goes
//! in `xi-api-key`; the JSON body needs `text` (`model_id`, `voice_settings`, `seed`, … are
//! accepted as given). Successes carry `request-id`, `character-cost` (characters of `text`),
//! `current-concurrent-requests` and `maximum-concurrent-requests`; errors carry `x-trace-id`
//! (equal to `detail.request_id`) and no `request-id`.
//!
//! Errors are always under `detail`: the current `{type, code, message, status, request_id,
//! param?}`, the legacy `{status, message}`, or FastAPI's 422 `[{loc, msg, type}]`. The trap
//! (`sim:insufficient_quota`): quota exhaustion is **HTTP 401** legacy `quota_exceeded`, not
//! 402 or 429. A voice id starting with `missing` is unknown (400 `voice_not_found`).
//! `sim:content_policy` answers 403 legacy `content_against_policy` (seen in third-party
//! clients, not in the official docs). Calls are immediate, so `sim:fail` is an immediate
//! 500; `sim:empty_output` is a 200 with an empty body.

pub mod audio;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

pub use audio::{CHARS_PER_SECOND, Format};

use crate::directives::{Directives, prompt_key};
use crate::faults::{Rejection, admit};
use crate::provider::Provider;
use crate::reply::{add_headers, header, json, parse_body};
use crate::state::SimState;
use crate::stats::Counter;

const P: Provider = Provider::ElevenLabs;
const DEFAULT_FORMAT: &str = "mp3_44100_128";
/// Concurrency reported (and quoted in the 429) when `max_concurrent_jobs` is unset.
const DEFAULT_MAX_CONCURRENT: u32 = 2;

/// Routes under `/elevenlabs`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/text-to-speech/{voice_id}", post(speech))
        .route("/v1/text-to-speech/{voice_id}/stream", post(speech))
        .route(
            "/v1/text-to-speech/{voice_id}/with-timestamps",
            post(with_timestamps),
        )
        .route("/v1/sound-generation", post(sound_generation))
}

/// `POST /v1/sound-generation` (text to sound effects): JSON `{text, duration_seconds
/// (0.5–30, optional), loop, prompt_influence, model_id}` answered with the audio bytes
/// (`output_format` query, mp3 by default), the same auth, quota and error envelope as text to
/// speech (https://elevenlabs.io/docs/api-reference/text-to-sound-effects/convert). The
/// `character-cost` header is not sent: what sound generation reports as its cost is
/// UNCONFIRMED.
async fn sound_generation(
    State(state): State<Arc<SimState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let call = match begin(&state, "sound-generation", &query, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let requested = parse_body(&raw)
        .ok()
        .and_then(|b| b.get("duration_seconds").and_then(Value::as_f64));
    if let Some(d) = requested
        && !(0.5..=30.0).contains(&d)
    {
        return unprocessable(
            "sound",
            &["body", "duration_seconds"],
            "Input should be between 0.5 and 30",
            "value_error",
        );
    }
    let bytes = if call.directives.empty_output {
        Vec::new()
    } else {
        call.format.render(requested.unwrap_or(5.0))
    };
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, call.format.content_type())],
        bytes,
    )
        .into_response();
    let headers: Vec<_> = call
        .headers
        .iter()
        .filter(|(k, _)| *k != "character-cost")
        .cloned()
        .collect();
    add_headers(&mut resp, &headers);
    resp
}

/// An error in the current envelope `{detail: {type, code, message, status, request_id}}`.
fn error(
    trace: &str,
    status: StatusCode,
    kind: &str,
    code: &str,
    message: &str,
    param: Option<&str>,
) -> Response {
    let mut detail = json!({"type": kind, "code": code, "message": message, "status": code,
        "request_id": trace});
    if let Some(param) = param {
        detail["param"] = json!(param);
    }
    detail_error(trace, status, detail)
}

/// Any `detail` body, with `x-trace-id`.
fn detail_error(trace: &str, status: StatusCode, detail: Value) -> Response {
    json(
        status,
        &[("x-trace-id", trace.to_owned())],
        &json!({ "detail": detail }),
    )
}

/// FastAPI's 422 for one field.
fn unprocessable(trace: &str, loc: &[&str], msg: &str, kind: &str) -> Response {
    detail_error(
        trace,
        StatusCode::UNPROCESSABLE_ENTITY,
        json!([{"loc": loc, "msg": msg, "type": kind}]),
    )
}

fn server_error(trace: &str) -> Response {
    error(
        trace,
        StatusCode::INTERNAL_SERVER_ERROR,
        "service_error",
        "internal_server_error",
        "An internal server error occurred. Please try again later.",
        None,
    )
}

fn max_concurrent(state: &SimState) -> u32 {
    state
        .config
        .max_concurrent_jobs
        .unwrap_or(DEFAULT_MAX_CONCURRENT)
}

/// A request that passed every check.
struct Accepted {
    text: String,
    format: Format,
    directives: Directives,
    headers: Vec<(&'static str, String)>,
    _guard: crate::state::InflightGuard,
}

/// Auth, body, admission, directives and validation, shared by the routes.
async fn begin(
    state: &Arc<SimState>,
    voice_id: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    raw: &[u8],
) -> Result<Accepted, Response> {
    let trace = format!("{:032x}", rand::random::<u128>());
    let reject = |resp: Response| {
        state.stats.bump(P, Counter::CreateRejection);
        resp
    };
    let key = header(headers, "xi-api-key")
        .map(str::trim)
        .unwrap_or_default();
    if key.is_empty() || key.starts_with("invalid") {
        return Err(reject(error(
            &trace,
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            "Invalid API key",
            None,
        )));
    }
    let body = match parse_body(raw) {
        Ok(b) if b.is_object() => b,
        Ok(_) => {
            return Err(reject(unprocessable(
                &trace,
                &["body"],
                "Input should be a valid dictionary or object to extract fields from",
                "model_attributes_type",
            )));
        }
        Err(_) => {
            return Err(reject(unprocessable(
                &trace,
                &["body"],
                "JSON decode error",
                "json_invalid",
            )));
        }
    };
    let directives = Directives::scan_as(&body, crate::provider::Provider::ElevenLabs);
    if let Err(rejection) = admit(state, P, &directives).await {
        return Err(match rejection {
            Rejection::RateLimited | Rejection::Capacity => {
                let message = format!(
                    "Too many concurrent requests. Your current subscription is associated with a maximum of {} concurrent requests (running in parallel). Reduce the number of parallel requests or upgrade your subscription.",
                    max_concurrent(state)
                );
                // The legacy `status` differs from the current `code` here.
                detail_error(
                    &trace,
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"type": "rate_limit_error", "code": "concurrent_limit_exceeded",
                        "message": message, "status": "too_many_concurrent_requests",
                        "request_id": trace}),
                )
            }
            Rejection::ServerError => server_error(&trace),
        });
    }
    if directives.insufficient_quota {
        return Err(reject(detail_error(
            &trace,
            StatusCode::UNAUTHORIZED,
            json!({"status": "quota_exceeded",
                "message": "This request exceeds your quota of 10000. You have 59 credits remaining, while 10059 credits are required for this request."}),
        )));
    }
    let text = match body.get("text") {
        None | Some(Value::Null) => {
            return Err(reject(unprocessable(
                &trace,
                &["body", "text"],
                "Field required",
                "missing",
            )));
        }
        Some(Value::String(t)) => t.clone(),
        Some(_) => {
            return Err(reject(unprocessable(
                &trace,
                &["body", "text"],
                "Input should be a valid string",
                "string_type",
            )));
        }
    };
    let format_name = query
        .get("output_format")
        .map_or(DEFAULT_FORMAT, String::as_str);
    let Some(format) = Format::parse(format_name) else {
        return Err(reject(unprocessable(
            &trace,
            &["query", "output_format"],
            "Input should be a valid output format such as 'mp3_44100_128', 'pcm_24000' or 'ulaw_8000'",
            "enum",
        )));
    };
    if voice_id.starts_with("missing") {
        let message = format!("A voice with the voice_id {voice_id} was not found.");
        return Err(reject(error(
            &trace,
            StatusCode::BAD_REQUEST,
            "validation_error",
            "voice_not_found",
            &message,
            Some("voice_id"),
        )));
    }
    let model = body
        .get("model_id")
        .and_then(Value::as_str)
        .unwrap_or("eleven_multilingual_v2");
    let limit = if model.contains("flash") || model.contains("turbo") {
        40_000
    } else {
        10_000
    };
    let chars = text.chars().count();
    let invalid = |message: &str| {
        error(
            &trace,
            StatusCode::BAD_REQUEST,
            "validation_error",
            "invalid_parameters",
            message,
            Some("text"),
        )
    };
    if text.trim().is_empty() {
        return Err(reject(invalid("text must not be empty.")));
    }
    if chars > limit {
        let message = format!(
            "Text is too long: {chars} characters, while the maximum for {model} is {limit}."
        );
        return Err(reject(error(
            &trace,
            StatusCode::BAD_REQUEST,
            "validation_error",
            "max_character_limit_exceeded",
            &message,
            Some("text"),
        )));
    }
    if directives.invalid {
        return Err(reject(invalid(
            "text contains an invalid value (sim:invalid).",
        )));
    }
    if directives.content_policy {
        return Err(reject(detail_error(
            &trace,
            StatusCode::FORBIDDEN,
            json!({"status": "content_against_policy",
                "message": "We are sorry but text you are trying to use may violate our Terms of Service and has been blocked."}),
        )));
    }
    if directives.fail {
        return Err(reject(server_error(&trace)));
    }
    let (guard, current) = state.immediate_request(P);
    state
        .stats
        .record_create(P, &prompt_key(&body), state.inflight(P));
    if let Some(ms) = directives.duration_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let headers = vec![
        ("request-id", format!("{:032x}", rand::random::<u128>())),
        ("character-cost", chars.to_string()),
        ("current-concurrent-requests", current.to_string()),
        (
            "maximum-concurrent-requests",
            max_concurrent(state).to_string(),
        ),
    ];
    Ok(Accepted {
        text,
        format,
        directives,
        headers,
        _guard: guard,
    })
}

async fn speech(
    State(state): State<Arc<SimState>>,
    Path(voice_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let call = match begin(&state, &voice_id, &query, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let bytes = if call.directives.empty_output {
        Vec::new()
    } else {
        call.format.render(audio::duration_seconds(&call.text))
    };
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, call.format.content_type())],
        bytes,
    )
        .into_response();
    add_headers(&mut resp, &call.headers);
    resp
}

async fn with_timestamps(
    State(state): State<Arc<SimState>>,
    Path(voice_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let call = match begin(&state, &voice_id, &query, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let body = if call.directives.empty_output {
        json!({"audio_base64": "", "alignment": null, "normalized_alignment": null})
    } else {
        let seconds = audio::duration_seconds(&call.text);
        let alignment = alignment(&call.text, seconds);
        json!({"audio_base64": STANDARD.encode(call.format.render(seconds)),
            "alignment": alignment, "normalized_alignment": alignment})
    };
    json(StatusCode::OK, &call.headers, &body)
}

/// Evenly spaced character times over `seconds`, in milliseconds precision.
fn alignment(text: &str, seconds: f64) -> Value {
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let step = seconds / chars.len().max(1) as f64;
    let at = |i: usize| (i as f64 * step * 1000.0).round() / 1000.0;
    json!({
        "characters": chars,
        "character_start_times_seconds": (0..chars.len()).map(at).collect::<Vec<_>>(),
        "character_end_times_seconds": (1..=chars.len()).map(at).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn alignment_spans_the_audio() {
        let a = alignment("hey", 0.3);
        assert_eq!(a["characters"], json!(["h", "e", "y"]));
        assert_eq!(a["character_start_times_seconds"], json!([0.0, 0.1, 0.2]));
        assert_eq!(a["character_end_times_seconds"], json!([0.1, 0.2, 0.3]));
    }
}
