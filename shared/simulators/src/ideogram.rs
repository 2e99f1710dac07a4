//! Ideogram simulator (`/ideogram`), from `docs/providers/ideogram.md`:
//! `POST /v1/ideogram-v3/generate` (multipart/form-data or JSON; `prompt` required,
//! `aspect_ratio` written `16x9`, `resolution` `1280x800`, `num_images`, `rendering_speed`)
//! and `POST /v1/ideogram-v4/generate` answer 200 `{created (a date-time **string**),
//! data[{url, prompt, resolution, is_image_safe, seed, style_type}]}` with ephemeral URLs
//! (`?exp=…&sig=…`) served here.
//!
//! Auth header `Api-Key`. The traps: `sim:unsafe_image` answers 200 with
//! `is_image_safe: false` and `url: null` for the image (a per-image safety failure inside a
//! success); `sim:content_policy` is the 422 `{"error": "Prompt provided failed safety
//! check…"}` [SPEC]. Other error bodies are not declared in the spec: `{"error": …}` with the
//! spec's descriptions ("Invalid input provided.", "Too many requests.") — UNCONFIRMED.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::engine::{Answer, AuthScheme, Errors, Spec, form_body, size_of, text};
use crate::media::{ImageKind, photo};
use crate::provider::Provider;
use crate::reply::header;
use crate::state::SimState;

const P: Provider = Provider::Ideogram;

/// The Ideogram spec.
pub static SPEC: Spec = Spec {
    provider: P,
    auth: AuthScheme::Header("api-key"),
    errors: &Errors {
        unauthorized: Answer {
            status: 401,
            body: r#"{"error":"Not authorized."}"#,
            headers: &[],
        },
        rate_limited: Answer {
            status: 429,
            body: r#"{"error":"Too many requests."}"#,
            headers: &[],
        },
        server_error: Answer {
            status: 500,
            body: r#"{"error":"Internal server error."}"#,
            headers: &[],
        },
        quota: Answer {
            status: 402,
            body: r#"{"error":"Insufficient credits. Please top up your API balance."}"#,
            headers: &[],
        },
        invalid: Answer {
            status: 400,
            body: r#"{"error":"Invalid input provided."}"#,
            headers: &[],
        },
        content_policy: Answer {
            status: 422,
            body: r#"{"error":"Prompt provided failed safety check due to the inclusion of prohibited content."}"#,
            headers: &[],
        },
        not_found: Answer {
            status: 404,
            body: r#"{"error":"Not found."}"#,
            headers: &[],
        },
        poll_error: Answer {
            status: 503,
            body: r#"{"error":"Service unavailable."}"#,
            headers: &[],
        },
    },
    ok_headers: &[],
    request_id_header: None,
    extra: &[],
};

/// Routes under `/ideogram`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/{version}/generate", post(generate))
        .route("/files/{id}/{name}", get(crate::files::serve))
}

async fn generate(
    State(state): State<Arc<SimState>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if version != "ideogram-v3" && version != "ideogram-v4" {
        return SPEC.errors.not_found.render("");
    }
    let multipart =
        header(&headers, "content-type").is_some_and(|c| c.starts_with("multipart/form-data"));
    let call = if multipart {
        if let Err(resp) = SPEC.authorize(&headers) {
            return resp;
        }
        let rid = SPEC.request_id();
        let Some((fields, _)) = form_body(&headers, &raw) else {
            return SPEC.reject(&state, &SPEC.errors.invalid, &rid);
        };
        SPEC.admit(&state, fields, rid).await
    } else {
        SPEC.begin(&state, &headers, &raw).await
    };
    let call = match call {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let b = &call.body;
    let Some(prompt) = text(b, "prompt")
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
    else {
        return SPEC.reject(&state, &SPEC.errors.invalid, &call.rid);
    };
    if let Some(resp) = SPEC.directed(&state, &call, true) {
        return resp;
    }
    SPEC.accept(&state, &call).await;
    let (w, h) = match text(b, "resolution") {
        Some(r) => size_of(Some(r), (1024, 1024)),
        None => crate::engine::ratio_to_size(text(b, "aspect_ratio"), 1024, (1024, 1024)),
    };
    let n = b
        .get("num_images")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(1)
        .clamp(1, 8);
    let Ok(bytes) = photo(w, h, ImageKind::Png) else {
        return SPEC.reject(&state, &SPEC.errors.server_error, &call.rid);
    };
    let id = crate::clock::lower_id();
    let exp = crate::clock::unix_seconds(SystemTime::now()) + 3600;
    let seed = b
        .get("seed")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(12345);
    let unsafe_image = call.directives.has("unsafe_image");
    let data: Vec<Value> = if call.directives.empty_output {
        Vec::new()
    } else {
        (0..n).map(|i| {
            let f = state.files.put_shared(&state.base_url(P), &id, &format!("{id}-{i}.png"), "image/png", bytes.clone(), (w, h));
            let url = (!unsafe_image).then(|| format!("{}?exp={exp}&sig={:064x}", f.url, rand::random::<u128>()));
            json!({"url": url, "prompt": prompt, "resolution": format!("{w}x{h}"), "is_image_safe": !unsafe_image,
                "seed": seed, "style_type": text(b, "style_type").unwrap_or("GENERAL")})
        }).collect()
    };
    SPEC.ok(
        StatusCode::OK,
        &call.rid,
        &json!({"created": rfc3339(SystemTime::now(), 6), "data": data}),
    )
}
