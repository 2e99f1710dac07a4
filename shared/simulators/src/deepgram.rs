//! Deepgram simulator (`/deepgram`), from `docs/providers/deepgram.md`:
//! `POST /v1/listen?model=nova-3&…` with raw audio (`Content-Type: audio/*`) or JSON
//! `{"url": …}` (`Content-Type: application/json`) answers the full `ListenV1Response`
//! (`metadata{request_id, sha256, created, duration, channels, models, model_info}`,
//! `results.channels[].alternatives[{transcript, confidence, words}]`); with
//! `callback=<url>` it answers at once `{"request_id"}` and POSTs the same response to the
//! URL when done (Basic credentials in the URL are sent back as `Authorization: Basic`; an
//! `extra=callback_secret:V` comes back in `metadata.extra`; no signature exists).
//! `POST /v1/speak?model=aura-2-thalia-en` with `{"text"}` answers MP3 bytes.
//!
//! Auth `Authorization: Token <key>` (or `Bearer`). Two error envelopes coexist:
//! `{category, message, details, request_id}` (bad JSON, `sim:invalid`) and `{err_code,
//! err_msg, request_id}` — the trap: a JSON `{url}` body sent **without**
//! `Content-Type: application/json` is parsed as audio and fails with the latter. The 401,
//! 402 and 429 bodies are UNCONFIRMED verbatim; rate-limit headers UNCONFIRMED (none sent);
//! `callback_method=PUT` is not honoured (always POST).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::clock::rfc3339;
use crate::engine::{Answer, AuthScheme, Errors, Spec, text};
use crate::jobs::{Job, Outcome, Phase};
use crate::provider::Provider;
use crate::reply::header as header_of;
use crate::state::SimState;
use crate::webhook::{Delivery, Signing};

const P: Provider = Provider::Deepgram;
const MODEL_UUID: &str = "1ed36bac-f71c-4f3f-a31f-02fd6525c489";

/// The Deepgram spec.
pub static SPEC: Spec = Spec {
    provider: P,
    auth: AuthScheme::Authorization(&["Token", "Bearer"]),
    errors: &Errors {
        unauthorized: Answer {
            status: 401,
            body: r#"{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id":"{request_id}"}"#,
            headers: &[],
        },
        rate_limited: Answer {
            status: 429,
            body: r#"{"err_code":"TOO_MANY_REQUESTS","err_msg":"Too many requests. Please try again later","request_id":"{request_id}"}"#,
            headers: &[],
        },
        server_error: Answer {
            status: 500,
            body: r#"{"err_code":"INTERNAL_SERVER_ERROR","err_msg":"Internal server error. Please try again later.","request_id":"{request_id}"}"#,
            headers: &[],
        },
        quota: Answer {
            status: 402,
            body: r#"{"err_code":"ASR_PAYMENT_REQUIRED","err_msg":"Project does not have enough credits for an ASR request and does not have an overage agreement.","request_id":"{request_id}"}"#,
            headers: &[],
        },
        invalid: Answer {
            status: 400,
            body: r#"{"category":"INVALID_JSON","message":"Invalid JSON submitted.","details":"Json deserialize error: missing field `url` at line 1 column 2 (sim:invalid)","request_id":"{request_id}"}"#,
            headers: &[],
        },
        content_policy: Answer {
            status: 400,
            body: r#"{"category":"INVALID_QUERY_PARAMETER","message":"Request rejected.","details":"sim:content_policy","request_id":"{request_id}"}"#,
            headers: &[],
        },
        not_found: Answer {
            status: 404,
            body: r#"{"err_code":"NOT_FOUND","err_msg":"Not found","request_id":"{request_id}"}"#,
            headers: &[],
        },
        poll_error: Answer {
            status: 503,
            body: r#"{"err_code":"SERVICE_UNAVAILABLE","err_msg":"Service unavailable","request_id":"{request_id}"}"#,
            headers: &[],
        },
    },
    ok_headers: &[],
    request_id_header: Some("dg-request-id"),
    extra: &[],
};

const CORRUPT: Answer = Answer {
    status: 400,
    body: r#"{"err_code":"Bad Request","err_msg":"Bad Request: failed to process audio: corrupt or unsupported data","request_id":"{request_id}"}"#,
    headers: &[],
};

/// Routes under `/deepgram`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/listen", post(listen))
        .route("/v1/speak", post(speak))
}

/// The query parameters and the JSON body (if any) as one object, for the directives.
fn merged(q: &HashMap<String, String>, json_body: Option<&Value>) -> Value {
    let mut m: Map<String, Value> = q.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    if let Some(Value::Object(b)) = json_body {
        m.extend(b.clone());
    }
    Value::Object(m)
}

async fn listen(
    State(state): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if let Err(resp) = SPEC.authorize(&headers) {
        state.stats.bump(P, crate::stats::Counter::CreateRejection);
        return resp;
    }
    let rid = SPEC.request_id();
    let is_json =
        header_of(&headers, "content-type").is_some_and(|c| c.starts_with("application/json"));
    let looks_json = raw.first() == Some(&b'{');
    if looks_json && !is_json {
        return SPEC.reject(&state, &CORRUPT, &rid);
    }
    let body = if is_json {
        match serde_json::from_slice::<Value>(&raw) {
            Ok(b) if text(&b, "url").is_some() => Some(b),
            _ => return SPEC.reject(&state, &SPEC.errors.invalid, &rid),
        }
    } else {
        None
    };
    if !is_json && raw.is_empty() {
        return SPEC.reject(&state, &CORRUPT, &rid);
    }
    let call = match SPEC.admit(&state, merged(&q, body.as_ref()), rid).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let fail_now = !q.contains_key("callback");
    if let Some(resp) = SPEC.directed(&state, &call, fail_now) {
        return resp;
    }
    let seconds = if is_json {
        25.5
    } else {
        (raw.len() as f64 / 16_000.0).max(0.5)
    };
    let sha = hex::encode(Sha256::digest(&raw));
    let id = crate::clock::uuid_v4();
    match q.get("callback") {
        Some(url) => {
            let mut job = SPEC.job(
                &state,
                &call,
                id.clone(),
                q.get("model").map_or("base", String::as_str),
            );
            job.webhook = Some(url.clone());
            job.variant = format!("{seconds}|{sha}");
            if let Some(gateway) = SPEC.created(&state, job, Some(callbacks)).await {
                return gateway;
            }
            SPEC.ok(StatusCode::OK, &id, &json!({"request_id": id}))
        }
        None => {
            SPEC.accept(&state, &call).await;
            let model = q.get("model").map_or("base", String::as_str);
            let out = response(
                &id,
                model,
                seconds,
                &sha,
                call.directives.empty_output,
                q.get("extra"),
                SystemTime::now(),
            );
            SPEC.ok(StatusCode::OK, &id, &out)
        }
    }
}

/// A `ListenV1Response`.
fn response(
    id: &str,
    model: &str,
    seconds: f64,
    sha: &str,
    empty: bool,
    extra: Option<&String>,
    at: SystemTime,
) -> Value {
    let said = if empty {
        ""
    } else {
        "this is a simulated transcript"
    };
    let words: Vec<Value> = said.split_whitespace().enumerate().map(|(i, w)| {
        let start = i as f64 * 0.4;
        json!({"word": w, "start": start, "end": start + 0.35, "confidence": 0.99, "punctuated_word": w})
    }).collect();
    let mut metadata = json!({"transaction_key": "deprecated", "request_id": id, "sha256": sha, "created": rfc3339(at, 3),
        "duration": seconds, "channels": 1, "models": [MODEL_UUID],
        "model_info": {MODEL_UUID: {"name": format!("general-{model}"), "version": "2024-12-20.0", "arch": model}}});
    if let Some((k, v)) = extra.and_then(|e| e.split_once(':')) {
        metadata["extra"] = json!({k: v});
    }
    json!({"metadata": metadata, "results": {"channels": [{"alternatives": [{"transcript": said, "confidence": 0.99, "words": words}]}]}})
}

fn callbacks(_: &SimState, job: &Job, _: Option<Phase>, to: Phase, _now: Instant) -> Vec<Delivery> {
    let Some(url) = job.webhook.clone().filter(|_| to.is_terminal()) else {
        return Vec::new();
    };
    let (seconds, sha) = job.variant.split_once('|').unwrap_or(("1", ""));
    let seconds = seconds.parse().unwrap_or(1.0);
    let extra = job
        .input
        .get("extra")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let body = match to {
        Phase::Done(o) if o.is_success() => response(
            &job.id,
            &job.model,
            seconds,
            sha,
            o == Outcome::EmptyOutput,
            extra.as_ref(),
            job.created_wall,
        ),
        _ => {
            json!({"err_code": "Bad Request", "err_msg": "Bad Request: failed to process audio: corrupt or unsupported data", "request_id": job.id})
        }
    };
    vec![Delivery {
        provider: P,
        url,
        body: body.to_string().into_bytes(),
        signing: Signing::None,
    }]
}

async fn speak(
    State(state): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let call = match SPEC.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let Some(said) = text(&call.body, "text")
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
    else {
        return SPEC.reject(&state, &SPEC.errors.invalid, &call.rid);
    };
    if let Some(resp) = SPEC.directed(&state, &call, true) {
        return resp;
    }
    SPEC.accept(&state, &call).await;
    let audio = if call.directives.empty_output {
        Vec::new()
    } else {
        crate::media::speech_mp3(&said)
    };
    let model = q
        .get("model")
        .cloned()
        .unwrap_or_else(|| "aura-asteria-en".to_owned());
    let mut resp = ([(header::CONTENT_TYPE, "audio/mpeg")], audio).into_response();
    crate::reply::add_headers(
        &mut resp,
        &[
            ("dg-model-name", model),
            ("dg-char-count", said.chars().count().to_string()),
        ],
    );
    SPEC.decorate(resp, &call.rid)
}
