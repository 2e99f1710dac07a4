//! AssemblyAI simulator (`/assemblyai`), from `docs/providers/assemblyai.md`:
//! `POST /v2/upload` (raw bytes → `{upload_url}`), `POST /v2/transcript` (`audio_url`
//! required, `speech_models[]`, webhook fields) → 200 `Transcript` `queued`;
//! `GET /v2/transcript/{id}` → `queued` → `processing` → **`completed`** (`text`, `words[]`,
//! `confidence`, `audio_duration` in integer seconds) or **`error`** (`error` text, e.g. the
//! download error of `sim:fail`); `DELETE /v2/transcript/{id}` (no cancel exists).
//!
//! Auth is the raw key in `Authorization` (no `Bearer`). Errors `{"error": "<message>"}`:
//! 401 "Authentication error, API token missing/invalid.", 429 "Too Many Requests" with
//! `Retry-After`, 500 "Server error, developers have been alerted.", and the traps: an
//! **unknown transcript id is 400** ("Transcript lookup error, transcript id not found"), and
//! **insufficient funds is 400** (`sim:insufficient_quota`). With `webhook_url` the
//! notification `{transcript_id, status}` is POSTed once on `completed` / `error`, carrying
//! `webhook_auth_header_name: webhook_auth_header_value` when given; a 4xx answer is final,
//! other failures are retried (the simulator's retry delays, not AssemblyAI's 10 attempts).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::engine::{Answer, AuthScheme, Errors, Spec, text};
use crate::jobs::{Job, Outcome, Phase};
use crate::provider::Provider;
use crate::state::SimState;
use crate::webhook::{Delivery, Signing};

const P: Provider = Provider::AssemblyAi;
const LOOKUP: &str = r#"{"error":"Transcript lookup error, transcript id not found"}"#;

/// The AssemblyAI spec.
pub static SPEC: Spec = Spec {
    provider: P,
    auth: AuthScheme::RawAuthorization,
    errors: &Errors {
        unauthorized: Answer {
            status: 401,
            body: r#"{"error":"Authentication error, API token missing/invalid."}"#,
            headers: &[],
        },
        rate_limited: Answer {
            status: 429,
            body: r#"{"error":"Too Many Requests"}"#,
            headers: &[("retry-after", "1")],
        },
        server_error: Answer {
            status: 500,
            body: r#"{"error":"Server error, developers have been alerted."}"#,
            headers: &[],
        },
        quota: Answer {
            status: 400,
            body: r#"{"error":"Your current account balance is negative. Please top up to continue using the API."}"#,
            headers: &[],
        },
        invalid: Answer {
            status: 400,
            body: r#"{"error":"The following models are not available in this language: speaker_labels (sim:invalid)"}"#,
            headers: &[],
        },
        content_policy: Answer {
            status: 400,
            body: r#"{"error":"Request rejected (sim:content_policy)"}"#,
            headers: &[],
        },
        not_found: Answer {
            status: 400,
            body: LOOKUP,
            headers: &[],
        },
        poll_error: Answer {
            status: 503,
            body: r#"{"error":"Service Unavailable"}"#,
            headers: &[],
        },
    },
    ok_headers: &[],
    request_id_header: None,
    extra: &[],
};

/// Routes under `/assemblyai`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v2/upload", post(upload))
        .route("/v2/transcript", post(create))
        .route("/v2/transcript/{id}", get(read).delete(delete))
        .route("/files/{id}/{name}", get(crate::files::serve))
}

async fn upload(State(state): State<Arc<SimState>>, headers: HeaderMap, raw: Bytes) -> Response {
    if let Err(resp) = SPEC.authorize(&headers) {
        return resp;
    }
    let id = crate::clock::uuid_v4();
    let f = state.files.put_shared(
        &state.base_url(P),
        &id,
        "upload",
        "application/octet-stream",
        raw,
        (0, 0),
    );
    SPEC.ok(StatusCode::OK, "", &json!({"upload_url": f.url}))
}

/// Seconds of audio behind `audio_url`: an upload of ours by its size (128 kbit/s), else 42.
fn audio_seconds(state: &SimState, url: &str) -> u64 {
    let Some(rest) = url.strip_prefix(&format!("{}/files/", state.base_url(P))) else {
        return 42;
    };
    let (id, name) = rest.split_once('/').unwrap_or((rest, ""));
    state
        .files
        .get(id, name)
        .map_or(42, |(_, b)| (b.len() as u64 / 16_000).max(1))
}

async fn create(State(state): State<Arc<SimState>>, headers: HeaderMap, raw: Bytes) -> Response {
    let call = match SPEC.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let Some(audio_url) = text(&call.body, "audio_url").filter(|u| !u.is_empty()) else {
        return SPEC.reject(
            &state,
            &Answer {
                status: 400,
                body: r#"{"error":"audio_url is required"}"#,
                headers: &[],
            },
            &call.rid,
        );
    };
    if let Some(resp) = SPEC.directed(&state, &call, false) {
        return resp;
    }
    let seconds = audio_seconds(&state, audio_url);
    let model = call
        .body
        .pointer("/speech_models/0")
        .and_then(Value::as_str)
        .or_else(|| text(&call.body, "speech_model"))
        .unwrap_or("universal")
        .to_owned();
    let mut job = SPEC.job(&state, &call, crate::clock::uuid_v4(), &model);
    job.variant = seconds.to_string();
    job.webhook = text(&call.body, "webhook_url")
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    let created = render(&job, Instant::now());
    if let Some(gateway) = SPEC.created(&state, job, Some(webhooks)).await {
        return gateway;
    }
    SPEC.ok(StatusCode::OK, &call.rid, &created)
}

/// The Transcript at `now`.
pub fn render(job: &Job, now: Instant) -> Value {
    let b = &job.input;
    let mut out = json!({
        "id": job.id, "audio_url": b.get("audio_url"), "status": "queued", "text": null, "words": null,
        "utterances": null, "confidence": null, "audio_duration": null, "language_code": "en_us",
        "speech_model": null, "speech_models": b.get("speech_models"), "speech_model_used": null,
        "punctuate": true, "format_text": true, "speaker_labels": b.get("speaker_labels").cloned().unwrap_or(json!(false)),
        "webhook_url": b.get("webhook_url"), "webhook_status_code": null,
        "webhook_auth": b.get("webhook_auth_header_name").is_some(),
        "webhook_auth_header_name": b.get("webhook_auth_header_name"), "error": null,
    });
    let status = match job.phase(now) {
        Phase::Queued => "queued",
        Phase::Running => "processing",
        Phase::Done(o) if o.is_success() => {
            let said = if o == Outcome::Success {
                "This is a simulated transcript."
            } else {
                ""
            };
            let words: Vec<Value> = said.split_whitespace().enumerate().map(|(i, w)| {
                let start = i as u64 * 400;
                json!({"text": w, "start": start, "end": start + 350, "confidence": 0.98, "speaker": null})
            }).collect();
            out["text"] = json!(said);
            out["words"] = json!(words);
            out["confidence"] = json!(0.98);
            out["audio_duration"] = json!(job.variant.parse::<u64>().unwrap_or(42));
            out["speech_model_used"] = json!(job.model);
            "completed"
        }
        Phase::Done(_) | Phase::Canceled => {
            let url = b
                .get("audio_url")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out["error"] = json!(format!(
                "Download error, unable to download {url}. Please make sure the file exists and is accessible from the internet."
            ));
            "error"
        }
    };
    out["status"] = json!(status);
    out
}

fn webhooks(_: &SimState, job: &Job, _: Option<Phase>, to: Phase, now: Instant) -> Vec<Delivery> {
    let Some(url) = job.webhook.clone().filter(|_| to.is_terminal()) else {
        return Vec::new();
    };
    let status = render(job, now)["status"].clone();
    let signing = match (
        text(&job.input, "webhook_auth_header_name"),
        text(&job.input, "webhook_auth_header_value"),
    ) {
        (Some(name), Some(value)) => Signing::Header {
            name: name.to_owned(),
            value: value.to_owned(),
        },
        _ => Signing::None,
    };
    vec![Delivery {
        provider: P,
        url,
        body: json!({"transcript_id": job.id, "status": status})
            .to_string()
            .into_bytes(),
        signing,
    }]
}

async fn read(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match SPEC.read(&state, &headers, &id) {
        Ok(job) if !job.deleted => SPEC.ok(StatusCode::OK, "", &render(&job, Instant::now())),
        Ok(_) => SPEC.errors.not_found.render(""),
        Err(resp) => resp,
    }
}

async fn delete(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = SPEC.authorize(&headers) {
        return resp;
    }
    let now = Instant::now();
    match state.jobs.get(P, &id) {
        Some(job) if !job.deleted && job.phase(now).is_terminal() => {
            state.jobs.update(P, &id, |j| j.deleted = true);
            let mut out = render(&job, now);
            out["text"] = json!("Deleted by user.");
            out["audio_url"] = json!("http://deleted_by_user");
            SPEC.ok(StatusCode::OK, "", &out)
        }
        Some(job) if !job.deleted => SPEC.stamp(
            Answer {
                status: 400,
                body: r#"{"error":"Transcript is still processing and cannot be deleted."}"#,
                headers: &[],
            }
            .render(""),
            "",
        ),
        _ => SPEC.errors.not_found.render(""),
    }
}
