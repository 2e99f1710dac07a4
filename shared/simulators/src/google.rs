//! Google Gemini API simulator (`/google`, Developer API `v1beta`), from
//! `docs/providers/gemini.md`: `POST /v1beta/models/{model}:generateContent` (immediate:
//! `candidates[].content.parts[]` of `text`, `inlineData` images for image models, or
//! `functionCall`; `usageMetadata`), `POST /v1beta/models/{model}:predict` (Imagen:
//! `predictions[{bytesBase64Encoded, mimeType}]`) and `POST …:predictLongRunning` (Veo: an
//! operation `{name: "models/{model}/operations/{id}"}` polled at `GET /v1beta/{name}`; while
//! running `done` is **absent**; then `done: true` with
//! `response.generateVideoResponse.generatedSamples[].video.uri`, or `error`, or — the safety
//! trap — no samples and `raiMediaFilteredReasons`). The video URI
//! `…/v1beta/files/{id}:download?alt=media` needs the key too.
//!
//! Auth `x-goog-api-key`; a missing or wrong key is **HTTP 400 `INVALID_ARGUMENT`**
//! (`API_KEY_INVALID`), not 401. Errors are `{error:{code, message, status, details[]}}`;
//! no rate-limit headers: the 429's wait is `RetryInfo.retryDelay` in the body.
//! `sim:insufficient_quota` is the per-day quota 429 (not worth retrying today),
//! `sim:overloaded` 503 `UNAVAILABLE` "The model is overloaded". `sim:content_policy`:
//! generateContent answers 200 with only `promptFeedback.blockReason: "SAFETY"`, Imagen
//! 200 with only `raiFilteredReason`, Veo `done` with filtered reasons. `?key=` auth is
//! UNCONFIRMED and not accepted.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::directives::prompt_key;
use crate::engine::{Answer, AuthScheme, Errors, Spec, ratio_to_size, text};
use crate::jobs::{Job, Outcome, Phase};
use crate::media::{ImageKind, photo};
use crate::provider::Provider;
use crate::state::SimState;
use crate::stats::Counter;

const P: Provider = Provider::Google;

/// The Gemini spec.
pub static SPEC: Spec = Spec {
    provider: P,
    auth: AuthScheme::Header("x-goog-api-key"),
    errors: &Errors {
        unauthorized: Answer {
            status: 400,
            body: r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}},{"@type":"type.googleapis.com/google.rpc.LocalizedMessage","locale":"en-US","message":"API key not valid. Please pass a valid API key."}]}}"#,
            headers: &[],
        },
        rate_limited: Answer {
            status: 429,
            body: r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. Please retry in 1.466542669s.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.5-flash"},"quotaValue":"10"}]},{"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1s"}]}}"#,
            headers: &[],
        },
        server_error: Answer {
            status: 500,
            body: r#"{"error":{"code":500,"message":"An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting","status":"INTERNAL"}}"#,
            headers: &[],
        },
        quota: Answer {
            status: 429,
            body: r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.5-flash"},"quotaValue":"250"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"43200s"}]}}"#,
            headers: &[],
        },
        invalid: Answer {
            status: 400,
            body: r#"{"error":{"code":400,"message":"* GenerateContentRequest.contents: contents is not specified (sim:invalid)","status":"INVALID_ARGUMENT"}}"#,
            headers: &[],
        },
        content_policy: Answer {
            status: 400,
            body: r#"{"error":{"code":400,"message":"The prompt could not be submitted. Your prompt contains content that violates our usage policies.","status":"INVALID_ARGUMENT"}}"#,
            headers: &[],
        },
        not_found: Answer {
            status: 404,
            body: r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}"#,
            headers: &[],
        },
        poll_error: Answer {
            status: 503,
            body: r#"{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE"}}"#,
            headers: &[],
        },
    },
    ok_headers: &[],
    request_id_header: None,
    extra: &[(
        "overloaded",
        Answer {
            status: 503,
            body: r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
            headers: &[],
        },
    )],
};

/// Routes under `/google`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1beta/models/{call}", post(call))
        .route("/v1beta/models/{model}/operations/{op}", get(operation))
        .route("/v1beta/files/{file}", get(download))
}

async fn call(
    State(state): State<Arc<SimState>>,
    Path(call): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let Some((model, method)) = call.split_once(':') else {
        return SPEC.errors.not_found.render("");
    };
    let model = model.to_owned();
    match method {
        "generateContent" => generate(state, model, headers, raw).await,
        "predict" => predict(state, model, headers, raw).await,
        "predictLongRunning" => long_running(state, model, headers, raw).await,
        _ => SPEC.errors.not_found.render(""),
    }
}

fn image_b64(w: u32, h: u32) -> Option<String> {
    photo(w, h, ImageKind::Png)
        .ok()
        .map(|b| STANDARD.encode(&b))
}

async fn generate(state: Arc<SimState>, model: String, headers: HeaderMap, raw: Bytes) -> Response {
    let call = match SPEC.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let body = &call.body;
    if body
        .get("contents")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        return SPEC.reject(&state, &SPEC.errors.invalid, &call.rid);
    }
    if let Some(resp) = SPEC.directed(&state, &call, false) {
        return resp;
    }
    if call.directives.fail {
        return SPEC.reject(&state, &SPEC.errors.server_error, &call.rid);
    }
    SPEC.accept(&state, &call).await;
    let prompt_tokens = (body.to_string().len() / 4) as u64 + 4;
    let usage = |candidates: u64| {
        json!({"promptTokenCount": prompt_tokens, "candidatesTokenCount": candidates,
        "totalTokenCount": prompt_tokens + candidates,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]})
    };
    let version = json!(model);
    let response_id = ulid::Ulid::new().to_string();
    if call.directives.content_policy {
        return SPEC.ok(StatusCode::OK, &call.rid, &json!({"promptFeedback": {"blockReason": "SAFETY",
            "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}]},
            "usageMetadata": usage(0), "modelVersion": version, "responseId": response_id}));
    }
    let image_model = model.contains("image");
    let declarations = body
        .pointer("/tools/0/functionDeclarations")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty());
    let forced = body
        .pointer("/toolConfig/functionCallingConfig/mode")
        .and_then(Value::as_str)
        == Some("ANY")
        || call.directives.has("tool_call");
    let (parts, finish, tokens) = if call.directives.empty_output {
        (
            json!([]),
            if image_model { "NO_IMAGE" } else { "STOP" },
            0u64,
        )
    } else if let Some(name) = declarations
        .filter(|_| forced)
        .and_then(|d| d.first()?.get("name")?.as_str())
    {
        (
            json!([{"functionCall": {"name": name, "args": {"location": "Paris"}}}]),
            "STOP",
            10,
        )
    } else if image_model {
        let Some(data) = image_b64(1024, 1024) else {
            return SPEC.reject(&state, &SPEC.errors.server_error, &call.rid);
        };
        (
            json!([{"text": "Here is the image you asked for."}, {"inlineData": {"mimeType": "image/png", "data": data}}]),
            "STOP",
            1290,
        )
    } else {
        let said: String = prompt_key(body).chars().take(80).collect();
        let reply = format!("This is a simulated reply to: {said}");
        let n = reply.split_whitespace().count() as u64 + 1;
        (json!([{"text": reply}]), "STOP", n)
    };
    SPEC.ok(StatusCode::OK, &call.rid, &json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
        "usageMetadata": usage(tokens), "modelVersion": version, "responseId": response_id,
    }))
}

async fn predict(state: Arc<SimState>, model: String, headers: HeaderMap, raw: Bytes) -> Response {
    let call = match SPEC.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let body = &call.body;
    if body
        .pointer("/instances/0/prompt")
        .and_then(Value::as_str)
        .is_none()
    {
        return SPEC.reject(&state, &SPEC.errors.invalid, &call.rid);
    }
    if let Some(resp) = SPEC.directed(&state, &call, false) {
        return resp;
    }
    if call.directives.fail {
        return SPEC.reject(&state, &SPEC.errors.server_error, &call.rid);
    }
    SPEC.accept(&state, &call).await;
    let _ = model;
    let n = body
        .pointer("/parameters/sampleCount")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 4);
    if call.directives.empty_output {
        return SPEC.ok(StatusCode::OK, &call.rid, &json!({}));
    }
    if call.directives.content_policy {
        let filtered: Vec<Value> = (0..n).map(|_| json!({"raiFilteredReason": "Your current safety filter threshold filtered out the generated image. You will not be charged for blocked images. Try rephrasing the prompt."})).collect();
        return SPEC.ok(StatusCode::OK, &call.rid, &json!({"predictions": filtered}));
    }
    let mime = body
        .pointer("/parameters/outputOptions/mimeType")
        .and_then(Value::as_str)
        .unwrap_or("image/png");
    let kind = ImageKind::parse(mime.trim_start_matches("image/")).unwrap_or(ImageKind::Png);
    let (w, h) = ratio_to_size(
        body.pointer("/parameters/aspectRatio")
            .and_then(Value::as_str),
        1024,
        (1024, 1024),
    );
    let Ok(bytes) = photo(w, h, kind) else {
        return SPEC.reject(&state, &SPEC.errors.server_error, &call.rid);
    };
    let data = STANDARD.encode(&bytes);
    let predictions: Vec<Value> = (0..n)
        .map(|_| json!({"bytesBase64Encoded": data, "mimeType": kind.content_type()}))
        .collect();
    SPEC.ok(
        StatusCode::OK,
        &call.rid,
        &json!({"predictions": predictions}),
    )
}

async fn long_running(
    state: Arc<SimState>,
    model: String,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let call = match SPEC.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if call
        .body
        .pointer("/instances/0/prompt")
        .and_then(Value::as_str)
        .is_none()
        && call.body.pointer("/instances/0/image").is_none()
    {
        return SPEC.reject(&state, &SPEC.errors.invalid, &call.rid);
    }
    if let Some(resp) = SPEC.directed(&state, &call, false) {
        return resp;
    }
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let mut job = SPEC.job(&state, &call, id.clone(), &model);
    if job.outcome == Outcome::Success {
        let params = call.body.get("parameters").cloned().unwrap_or(Value::Null);
        let seconds = params
            .get("durationSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(8);
        let size = match (text(&params, "aspectRatio"), text(&params, "resolution")) {
            (Some("9:16"), Some("1080p")) => (1080, 1920),
            (Some("9:16"), _) => (720, 1280),
            (_, Some("1080p")) => (1920, 1080),
            _ => (1280, 720),
        };
        match state.files.generate_video(
            &state.base_url(P),
            &id,
            "video",
            1,
            size,
            u32::try_from(seconds).unwrap_or(8),
        ) {
            Ok(out) => job.set_outputs(out),
            Err(_) => return SPEC.reject(&state, &SPEC.errors.server_error, &call.rid),
        }
    }
    let name = format!("models/{model}/operations/{id}");
    if let Some(gateway) = SPEC.created(&state, job, None).await {
        return gateway;
    }
    SPEC.ok(StatusCode::OK, &call.rid, &json!({"name": name}))
}

/// The operation at `now`.
pub fn render(state: &SimState, job: &Job, now: Instant) -> Value {
    let name = format!("models/{}/operations/{}", job.model, job.id);
    let response = |inner: Value| json!({"@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse", "generateVideoResponse": inner});
    match job.phase(now) {
        Phase::Queued | Phase::Running => json!({"name": name}),
        Phase::Done(Outcome::Success) => {
            let samples: Vec<Value> = job.outputs.iter().map(|_| json!({"video": {"uri": format!("{}/v1beta/files/{}:download?alt=media", state.base_url(P), job.id)}})).collect();
            json!({"name": name, "done": true, "response": response(json!({"generatedSamples": samples}))})
        }
        Phase::Done(Outcome::EmptyOutput) => {
            json!({"name": name, "done": true, "response": response(json!({}))})
        }
        Phase::Done(Outcome::ContentPolicy) => {
            json!({"name": name, "done": true, "response": response(json!({
            "raiMediaFilteredCount": 1,
            "raiMediaFilteredReasons": ["We encountered an issue with the audio for your prompt. You have not been charged for this request. Please try rephrasing the prompt."]}))})
        }
        Phase::Done(Outcome::Fail | Outcome::Invalid) => json!({"name": name, "done": true,
            "error": {"code": 13, "message": "Video generation failed due to an internal error. Please try again."}}),
        Phase::Canceled => {
            json!({"name": name, "done": true, "error": {"code": 1, "message": "Operation was cancelled."}})
        }
    }
}

async fn operation(
    State(state): State<Arc<SimState>>,
    Path((_model, op)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match SPEC.read(&state, &headers, &op) {
        Ok(job) => SPEC.ok(StatusCode::OK, "", &render(&state, &job, Instant::now())),
        Err(resp) => resp,
    }
}

/// `GET /v1beta/files/{id}:download?alt=media` with the key: the video bytes.
async fn download(
    State(state): State<Arc<SimState>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = SPEC.authorize(&headers) {
        return resp;
    }
    let id = file.strip_suffix(":download").unwrap_or(&file);
    let now = Instant::now();
    let found = state
        .jobs
        .get(P, id)
        .filter(|j| j.phase(now) == Phase::Done(Outcome::Success))
        .and_then(|j| j.outputs.first().cloned())
        .and_then(|f| state.files.get(id, &f.file_name));
    match found {
        Some((content_type, bytes)) => {
            state.stats.bump(P, Counter::ResultFetch);
            ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        None => SPEC.errors.not_found.render(""),
    }
}
