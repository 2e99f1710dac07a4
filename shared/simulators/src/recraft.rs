//! Recraft simulator (`/recraft`), from `docs/providers/recraft.md`:
//! `POST /v1/images/generations` (also `/raster` and `/vector`; `prompt` required, `model`
//! e.g. `recraftv3` / `recraftv3_vector`, `size` `1024x1024` or a ratio, `n`,
//! `response_format` `url` | `b64_json`, `image_format` `webp` | `png`) answers
//! `{created, credits, data[{image_id, url | b64_json}]}` — **`credits` is the charge of the
//! call**, in-band. Vector models answer SVG (`image/svg+xml`, UNCONFIRMED mime).
//!
//! Auth `Authorization: Bearer`. The spec declares only 200s: every error body, the 401/429
//! statuses and rate-limit headers are UNCONFIRMED (`{code, message}` here, marked
//! synthetic).

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::clock::unix_seconds;
use crate::engine::{Answer, AuthScheme, Errors, Spec, ratio_to_size, text};
use crate::media::{ImageKind, photo, svg};
use crate::provider::Provider;
use crate::state::SimState;

const P: Provider = Provider::Recraft;

/// The Recraft spec (error answers synthetic: none are documented).
pub static SPEC: Spec = Spec {
    provider: P,
    auth: AuthScheme::Authorization(&["Bearer"]),
    errors: &Errors {
        unauthorized: Answer {
            status: 401,
            body: r#"{"code":"unauthorized","message":"Invalid or missing API token"}"#,
            headers: &[],
        },
        rate_limited: Answer {
            status: 429,
            body: r#"{"code":"too_many_requests","message":"Too many requests"}"#,
            headers: &[("retry-after", "1")],
        },
        server_error: Answer {
            status: 500,
            body: r#"{"code":"internal_error","message":"Internal server error"}"#,
            headers: &[],
        },
        quota: Answer {
            status: 402,
            body: r#"{"code":"not_enough_credits","message":"Not enough credits"}"#,
            headers: &[],
        },
        invalid: Answer {
            status: 400,
            body: r#"{"code":"invalid_request","message":"Invalid request (sim:invalid)"}"#,
            headers: &[],
        },
        content_policy: Answer {
            status: 400,
            body: r#"{"code":"nsfw","message":"The prompt was flagged as unsafe"}"#,
            headers: &[],
        },
        not_found: Answer {
            status: 404,
            body: r#"{"code":"not_found","message":"Not found"}"#,
            headers: &[],
        },
        poll_error: Answer {
            status: 503,
            body: r#"{"code":"unavailable","message":"Service unavailable"}"#,
            headers: &[],
        },
    },
    ok_headers: &[],
    request_id_header: None,
    extra: &[],
};

/// Routes under `/recraft`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/images/generations", post(generate))
        .route("/v1/images/generations/raster", post(generate))
        .route("/v1/images/generations/vector", post(generate))
        .route("/files/{id}/{name}", get(crate::files::serve))
}

async fn generate(State(state): State<Arc<SimState>>, headers: HeaderMap, raw: Bytes) -> Response {
    let call = match SPEC.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let b = &call.body;
    if text(b, "prompt").is_none_or(str::is_empty) {
        return SPEC.reject(&state, &SPEC.errors.invalid, &call.rid);
    }
    if let Some(resp) = SPEC.directed(&state, &call, true) {
        return resp;
    }
    SPEC.accept(&state, &call).await;
    let model = text(b, "model").unwrap_or("recraftv3");
    let vector =
        model.contains("vector") || text(b, "style").is_some_and(|s| s.starts_with("vector"));
    let (w, h) = ratio_to_size(text(b, "size"), 1024, (1024, 1024));
    let n = b.get("n").and_then(Value::as_u64).unwrap_or(1).clamp(1, 6);
    let kind = text(b, "image_format")
        .and_then(ImageKind::parse)
        .unwrap_or(ImageKind::Webp);
    let (bytes, ct, ext) = if vector {
        (svg(w, h), "image/svg+xml", "svg")
    } else {
        match photo(w, h, kind) {
            Ok(b) => (b, kind.content_type(), kind.extension()),
            Err(_) => return SPEC.reject(&state, &SPEC.errors.server_error, &call.rid),
        }
    };
    let b64 = text(b, "response_format") == Some("b64_json");
    let count = if call.directives.empty_output { 0 } else { n };
    let data: Vec<Value> = (0..count)
        .map(|_| {
            let id = crate::clock::uuid_v4();
            if b64 {
                json!({"image_id": id, "b64_json": STANDARD.encode(&bytes)})
            } else {
                let f = state.files.put_shared(
                    &state.base_url(P),
                    &id,
                    &format!("image.{ext}"),
                    ct,
                    bytes.clone(),
                    (w, h),
                );
                json!({"image_id": id, "url": f.url})
            }
        })
        .collect();
    let per_image = if vector { 80 } else { 40 };
    SPEC.ok(StatusCode::OK, &call.rid, &json!({"created": unix_seconds(SystemTime::now()), "credits": per_image * count, "data": data}))
}
