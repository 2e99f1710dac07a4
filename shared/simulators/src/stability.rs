//! Stability AI simulator (`/stability`), the v2beta Stable Image API:
//! `POST /v2beta/stable-image/generate/{ultra|core|sd3}` with a `multipart/form-data` body
//! (`prompt` required, at most 10000 characters; `negative_prompt`, `aspect_ratio`, `seed`,
//! `style_preset`, `output_format`) and `authorization: Bearer …`. With `accept: image/*` (or
//! no `accept`) the answer is the image bytes with `finish-reason`, `seed` and `x-request-id`
//! headers; with `accept: application/json` it is `{image (base64), seed, finish_reason}`
//! typed `application/json; type=image/png` (no `finish-reason`/`seed` headers). Errors are
//! `{id, name, errors: [string]}`. Calls are immediate, so `sim:fail` is an immediate 500.
//!
//! The trap (`sim:content_policy`): **HTTP 200** with `finish-reason: CONTENT_FILTERED` and a
//! blurred (flat grey) image — a filtered generation, not a result. `sim:empty_output`
//! answers 200 `SUCCESS` with a 0-byte body (JSON: an empty `image`).
//!
//! `output_format` is honoured: PNG, JPEG or WebP bytes of the requested size, typed
//! accordingly (`application/json; type=image/<fmt>` for JSON answers). Directives of its
//! own: `sim:too_large` → 413 `payload_too_large`, `sim:unprocessable` → 422 `public_figure`,
//! `sim:moderated` → 403 `content_moderation` [SPEC names; `errors[]` wording UNCONFIRMED].
//! The 401 and 402 bodies are not documented: they use the same envelope
//! (`unauthorized`, `payment_required`) with wording of our own.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::directives::{Directives, prompt_key};
use crate::faults::{Rejection, admit};
use crate::files;
use crate::multipart;
use crate::provider::Provider;
use crate::reply::{Auth, add_headers, check_auth, header, json};
use crate::state::SimState;
use crate::stats::Counter;

const P: Provider = Provider::Stability;
const SERVICES: [&str; 3] = ["ultra", "core", "sd3"];
const ASPECT_RATIOS: [&str; 9] = [
    "16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21",
];
const OUTPUT_FORMATS: [&str; 3] = ["png", "jpeg", "webp"];
const STYLE_PRESETS: [&str; 17] = [
    "3d-model",
    "analog-film",
    "anime",
    "cinematic",
    "comic-book",
    "digital-art",
    "enhance",
    "fantasy-art",
    "isometric",
    "line-art",
    "low-poly",
    "modeling-compound",
    "neon-punk",
    "origami",
    "photographic",
    "pixel-art",
    "tile-texture",
];
const MAX_PROMPT_CHARS: usize = 10_000;
const MAX_SEED: u64 = 4_294_967_294;
const SERVER_ERROR: &str = "An unexpected server error has occurred, please try again later.";

/// Routes under `/stability`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new().route("/v2beta/stable-image/generate/{service}", post(generate))
}

/// An error in Stability's envelope.
fn error(status: StatusCode, id: &str, name: &str, errors: &[String]) -> Response {
    json(
        status,
        &[],
        &json!({"id": id, "name": name, "errors": errors}),
    )
}

fn bad_request(id: &str, message: String) -> Response {
    error(StatusCode::BAD_REQUEST, id, "bad_request", &[message])
}

fn server_error(id: &str) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        id,
        "internal_error",
        &[SERVER_ERROR.to_owned()],
    )
}

/// The text fields of the form as a JSON object (empty values dropped: absent).
fn form_fields(headers: &HeaderMap, raw: &[u8]) -> Result<Map<String, Value>, String> {
    let content_type = header(headers, "content-type").unwrap_or_default();
    let parts = multipart::parse(content_type, raw).map_err(|e| format!("content-type: {e}"))?;
    Ok(parts
        .iter()
        .filter_map(|p| Some((p.name.clone(), p.text()?.to_owned())))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, Value::String(v)))
        .collect())
}

/// The first invalid field, as Stability words it.
fn invalid_field(fields: &Map<String, Value>) -> Option<String> {
    let text = |k: &str| fields.get(k).and_then(Value::as_str);
    let one_of = |k: &str, allowed: &[&str]| {
        text(k)
            .filter(|v| !allowed.contains(v))
            .map(|_| format!("{k}: must be one of {}", allowed.join(", ")))
    };
    let Some(prompt) = text("prompt") else {
        return Some("prompt: required".to_owned());
    };
    if prompt.trim().is_empty() {
        return Some("prompt: cannot be empty".to_owned());
    }
    for k in ["prompt", "negative_prompt"] {
        if text(k).is_some_and(|v| v.chars().count() > MAX_PROMPT_CHARS) {
            return Some(format!(
                "{k}: must be at most {MAX_PROMPT_CHARS} characters"
            ));
        }
    }
    if text("seed").is_some_and(|s| s.parse::<u64>().map_or(true, |n| n > MAX_SEED)) {
        return Some(format!("seed: must be an integer between 0 and {MAX_SEED}"));
    }
    one_of("aspect_ratio", &ASPECT_RATIOS)
        .or_else(|| one_of("output_format", &OUTPUT_FORMATS))
        .or_else(|| one_of("style_preset", &STYLE_PRESETS))
}

/// Pixel size of an `aspect_ratio` such as `"16:9"`: about one megapixel in multiples of 64,
/// as Stable Image Core returns (1024×1024 for 1:1, 1344×768 for 16:9).
fn ratio_size(fields: &Map<String, Value>) -> (u32, u32) {
    let (w, h) = fields
        .get("aspect_ratio")
        .and_then(Value::as_str)
        .and_then(|r| r.split_once(':'))
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .unwrap_or((1, 1));
    let (w, h) = (f64::from(w.max(1)), f64::from(h.max(1)));
    let k = (1_048_576.0 / (w * h)).sqrt();
    let side = |v: f64| ((v * k / 64.0).round().max(1.0) as u32) * 64;
    (side(w), side(h))
}

async fn generate(
    State(state): State<Arc<SimState>>,
    Path(service): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let id = format!("{:032x}", rand::random::<u128>());
    if !SERVICES.contains(&service.as_str()) {
        return error(
            StatusCode::NOT_FOUND,
            &id,
            "not_found",
            &[format!("service {service} not found")],
        );
    }
    let reject = |resp: Response| {
        state.stats.bump(P, Counter::CreateRejection);
        resp
    };
    if check_auth(&headers, &["Bearer"]) != Auth::Ok {
        return reject(error(
            StatusCode::UNAUTHORIZED,
            &id,
            "unauthorized",
            &["authorization: invalid or missing header value".to_owned()],
        ));
    }
    let fields = match form_fields(&headers, &raw) {
        Ok(f) => f,
        Err(message) => return reject(bad_request(&id, message)),
    };
    let body = Value::Object(fields.clone());
    let directives = Directives::scan_as(&body, crate::provider::Provider::Stability);
    if let Err(rejection) = admit(&state, P, &directives).await {
        return match rejection {
            Rejection::RateLimited | Rejection::Capacity => error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                "rate_limit_exceeded",
                &["You have exceeded the rate limit of 150 requests within a 10 second period, and have been timed out for 60 seconds.".to_owned()],
            ),
            Rejection::ServerError => server_error(&id),
        };
    }
    if directives.insufficient_quota {
        return reject(error(
            StatusCode::PAYMENT_REQUIRED,
            &id,
            "payment_required",
            &["You lack sufficient credits to make this request. Please purchase more credits at https://platform.stability.ai/account/credits and try again.".to_owned()],
        ));
    }
    if let Some(message) = invalid_field(&fields) {
        return reject(bad_request(&id, message));
    }
    if directives.invalid {
        return reject(bad_request(
            &id,
            "prompt: contains an invalid value (sim:invalid)".to_owned(),
        ));
    }
    if directives.fail {
        return reject(server_error(&id));
    }
    // Documented errors of their own: 413 `payload_too_large`, 422 (e.g. `public_figure`),
    // 403 `content_moderation` (the request flagged, distinct from the 200 CONTENT_FILTERED).
    // The `errors[]` wording is UNCONFIRMED.
    if directives.has("too_large") {
        return reject(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &id,
            "payload_too_large",
            &["body: payloads cannot be larger than 10MiB in size".to_owned()],
        ));
    }
    if directives.has("unprocessable") {
        return reject(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &id,
            "public_figure",
            &["Our system detected the likeness of a public figure in your image. To comply with our guidelines, this request cannot be processed. Please upload a different image.".to_owned()],
        ));
    }
    if directives.has("moderated") {
        return reject(error(
            StatusCode::FORBIDDEN,
            &id,
            "content_moderation",
            &["Your request was flagged by our content moderation system, as a result your request was denied and you were not charged.".to_owned()],
        ));
    }
    let (_guard, _) = state.immediate_request(P);
    state
        .stats
        .record_create(P, &prompt_key(&body), state.inflight(P));
    if let Some(ms) = directives.duration_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    let seed = fields
        .get("seed")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| rand::random_range(1..=MAX_SEED));
    let finish_reason = if directives.content_policy {
        "CONTENT_FILTERED"
    } else {
        "SUCCESS"
    };
    let (w, h) = ratio_size(&fields);
    let kind = fields
        .get("output_format")
        .and_then(Value::as_str)
        .and_then(crate::media::ImageKind::parse)
        .unwrap_or(crate::media::ImageKind::Png);
    let image = if directives.empty_output {
        Ok(Vec::new())
    } else if directives.content_policy && kind == crate::media::ImageKind::Png {
        files::flat_png(w, h)
    } else {
        crate::media::photo(w, h, kind).map(|b| b.to_vec())
    };
    let Ok(image) = image else {
        return server_error(&id);
    };
    let wants_json = header(&headers, "accept").is_some_and(|a| a.contains("application/json"));
    if wants_json {
        let mut resp = json(
            StatusCode::OK,
            &[("x-request-id", id)],
            &json!({"image": STANDARD.encode(&image), "seed": seed, "finish_reason": finish_reason}),
        );
        add_headers(
            &mut resp,
            &[(
                "content-type",
                format!("application/json; type={}", kind.content_type()),
            )],
        );
        return resp;
    }
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, kind.content_type())],
        image,
    )
        .into_response();
    add_headers(
        &mut resp,
        &[
            ("finish-reason", finish_reason.to_owned()),
            ("seed", seed.to_string()),
            ("x-request-id", id),
        ],
    );
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn validates_fields_in_stability_words() {
        assert_eq!(
            invalid_field(&fields(json!({}))).as_deref(),
            Some("prompt: required")
        );
        assert_eq!(invalid_field(&fields(json!({"prompt": "a cat"}))), None);
        let bad = invalid_field(&fields(json!({"prompt": "a", "aspect_ratio": "7:3"}))).unwrap();
        assert!(bad.starts_with("aspect_ratio: must be one of 16:9"));
        let bad = invalid_field(&fields(json!({"prompt": "a", "seed": "4294967295"}))).unwrap();
        assert!(bad.starts_with("seed: "));
        let long = "x".repeat(MAX_PROMPT_CHARS + 1);
        assert!(
            invalid_field(&fields(json!({ "prompt": long })))
                .unwrap()
                .starts_with("prompt: must be at most")
        );
        assert_eq!(
            ratio_size(&fields(json!({"aspect_ratio": "16:9"}))),
            (1344, 768)
        );
        assert_eq!(ratio_size(&fields(json!({}))), (1024, 1024));
    }
}
