//! Hugging Face simulator (`/huggingface`, the Inference Providers router), from
//! `docs/providers/huggingface.md`: `POST /hf-inference/models/{org}/{name}` with
//! `{inputs, parameters}` — text-to-image models answer **raw image bytes** (JPEG here: the
//! real `Content-Type` is UNCONFIRMED), other models `[{"generated_text"}]` — and
//! `POST /v1/chat/completions` (OpenAI-compatible; `model` may carry `:provider`).
//!
//! Auth `Authorization: Bearer hf_…`; errors `{"error": "<message>"}` JSON (switch on the
//! `Content-Type`: success is binary). The trap: `sim:model_loading=N` answers the first N
//! calls **503** `{"error": "Model … is currently loading", "estimated_time": 20.0}` — wait and
//! retry, not an outage. Every answer carries the IETF draft rate-limit headers
//! `ratelimit: "api";r=…;t=…` and `ratelimit-policy` [CODE]; 429 when exhausted. The 401,
//! 402 and 429 wordings are UNCONFIRMED.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::directives::prompt_key;
use crate::engine::{Answer, AuthScheme, Errors, Spec, text};
use crate::files::MediaKind;
use crate::media::{ImageKind, photo};
use crate::provider::Provider;
use crate::state::SimState;

const P: Provider = Provider::HuggingFace;

/// The Hugging Face spec.
pub static SPEC: Spec = Spec {
    provider: P,
    auth: AuthScheme::Authorization(&["Bearer"]),
    errors: &Errors {
        unauthorized: Answer {
            status: 401,
            body: r#"{"error":"Invalid credentials in Authorization header"}"#,
            headers: &[],
        },
        rate_limited: Answer {
            status: 429,
            body: r#"{"error":"Rate limit reached. Please retry later."}"#,
            headers: &[
                ("ratelimit", "\"api\";r=0;t=1"),
                ("ratelimit-policy", "\"fixed window\";\"api\";q=500;w=300"),
            ],
        },
        server_error: Answer {
            status: 500,
            body: r#"{"error":"Internal Server Error"}"#,
            headers: &[],
        },
        quota: Answer {
            status: 402,
            body: r#"{"error":"You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO to get 20x more monthly included credits."}"#,
            headers: &[],
        },
        invalid: Answer {
            status: 400,
            body: r#"{"error":"Input validation error: `inputs` must be a non-empty string (sim:invalid)"}"#,
            headers: &[],
        },
        content_policy: Answer {
            status: 400,
            body: r#"{"error":"The request was rejected by the provider's safety checker."}"#,
            headers: &[],
        },
        not_found: Answer {
            status: 404,
            body: r#"{"error":"Model not found"}"#,
            headers: &[],
        },
        poll_error: Answer {
            status: 503,
            body: r#"{"error":"Service Unavailable"}"#,
            headers: &[],
        },
    },
    ok_headers: &[
        ("ratelimit", "\"api\";r=499;t=55"),
        ("ratelimit-policy", "\"fixed window\";\"api\";q=500;w=300"),
    ],
    request_id_header: Some("x-request-id"),
    extra: &[],
};

/// Routes under `/huggingface`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/hf-inference/models/{*model}", post(task))
        .route("/v1/chat/completions", post(chat))
}

async fn task(
    State(state): State<Arc<SimState>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let call = match SPEC.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if let Some(Some(n)) = call.directives.extra("model_loading") {
        let times = n.parse().unwrap_or(1);
        if state
            .faults
            .take(P, "model_loading", &prompt_key(&call.body), times)
        {
            let body = json!({"error": format!("Model {model} is currently loading"), "estimated_time": 20.0});
            state.stats.bump(P, crate::stats::Counter::CreateRejection);
            return SPEC.decorate(
                crate::reply::json(StatusCode::SERVICE_UNAVAILABLE, &[], &body),
                &call.rid,
            );
        }
    } else if call.directives.has("model_loading")
        && state
            .faults
            .take(P, "model_loading", &prompt_key(&call.body), 1)
    {
        let body =
            json!({"error": format!("Model {model} is currently loading"), "estimated_time": 20.0});
        return SPEC.stamp(
            crate::reply::json(StatusCode::SERVICE_UNAVAILABLE, &[], &body),
            &call.rid,
        );
    }
    let inputs = call.body.get("inputs");
    if inputs.is_none_or(|i| i.as_str() == Some("")) {
        return SPEC.reject(&state, &SPEC.errors.invalid, &call.rid);
    }
    if let Some(resp) = SPEC.directed(&state, &call, true) {
        return resp;
    }
    SPEC.accept(&state, &call).await;
    if MediaKind::guess(&model) == MediaKind::Text {
        let said: String = prompt_key(&call.body).chars().take(80).collect();
        let out = if call.directives.empty_output {
            String::new()
        } else {
            format!("{said} … (simulated)")
        };
        return SPEC.ok(StatusCode::OK, &call.rid, &json!([{"generated_text": out}]));
    }
    let dim = |k: &str| {
        call.body
            .pointer(&format!("/parameters/{k}"))
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(1024)
    };
    let bytes = if call.directives.empty_output {
        Bytes::new()
    } else {
        match photo(dim("width"), dim("height"), ImageKind::Jpeg) {
            Ok(b) => b,
            Err(_) => return SPEC.reject(&state, &SPEC.errors.server_error, &call.rid),
        }
    };
    SPEC.decorate(
        ([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response(),
        &call.rid,
    )
}

async fn chat(State(state): State<Arc<SimState>>, headers: HeaderMap, raw: Bytes) -> Response {
    let call = match SPEC.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let (Some(model), Some(messages)) = (
        text(&call.body, "model"),
        call.body
            .get("messages")
            .and_then(Value::as_array)
            .filter(|m| !m.is_empty()),
    ) else {
        return SPEC.reject(&state, &SPEC.errors.invalid, &call.rid);
    };
    if let Some(resp) = SPEC.directed(&state, &call, true) {
        return resp;
    }
    SPEC.accept(&state, &call).await;
    let out = crate::compat::completion(
        model.split(':').next().unwrap_or(model),
        &call.body,
        messages,
        &call.directives,
    );
    SPEC.ok(StatusCode::OK, &call.rid, &out)
}
