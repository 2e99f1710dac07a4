//! Anthropic simulator (`/anthropic`), from `docs/providers/anthropic.md`:
//! `POST /v1/messages` (immediate `Message`: `content[]` of `text` or `tool_use` blocks,
//! `stop_reason`, `usage{input_tokens, output_tokens, …, service_tier}`) and the Message
//! Batches polling shape: `POST /v1/messages/batches` → `MessageBatch`
//! (`processing_status` in_progress → ended, `request_counts`, `results_url` once ended),
//! `GET /v1/messages/batches/{id}`, `POST …/{id}/cancel` (→ `canceling`, then `ended` with
//! the requests counted `canceled`), `GET …/{id}/results` (JSONL, one line per request:
//! `succeeded` / `errored` / `canceled`, each request's own directives choosing its line).
//!
//! Auth `x-api-key` plus a required `anthropic-version` header; every answer has `request-id`;
//! errors are `{type:"error", error:{type, message}, request_id}`: 401 `authentication_error`,
//! 429 `rate_limit_error` (+ `retry-after`), 500 `api_error`, 404 `not_found_error`,
//! 400 `invalid_request_error` (`sim:invalid`; `sim:insufficient_quota` answers the
//! "credit balance is too low" 400 — the SDK's `billing_error` 402 is not what clients report,
//! UNCONFIRMED), `sim:overloaded` → 529 `overloaded_error`, `sim:too_large` → 413
//! `request_too_large`. `sim:content_policy` is a 200 `stop_reason: "refusal"`, not an error.
//! Rate-limit headers `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` (reset
//! RFC 3339); the input/output-token families are UNCONFIRMED and not sent.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::directives::{Directives, prompt_key};
use crate::engine::{Answer, AuthScheme, Errors, Spec, text};
use crate::jobs::{Job, Phase};
use crate::provider::Provider;
use crate::reply::header;
use crate::state::SimState;
use crate::stats::Counter;

const P: Provider = Provider::Anthropic;

/// The Anthropic spec: auth, errors, headers.
pub static SPEC: Spec = Spec {
    provider: P,
    auth: AuthScheme::Header("x-api-key"),
    errors: &Errors {
        unauthorized: Answer {
            status: 401,
            body: r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"{request_id}"}"#,
            headers: &[],
        },
        rate_limited: Answer {
            status: 429,
            body: r#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.anthropic.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase."},"request_id":"{request_id}"}"#,
            headers: &[
                ("retry-after", "1"),
                ("anthropic-ratelimit-requests-remaining", "0"),
            ],
        },
        server_error: Answer {
            status: 500,
            body: r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"},"request_id":"{request_id}"}"#,
            headers: &[],
        },
        quota: Answer {
            status: 400,
            body: r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."},"request_id":"{request_id}"}"#,
            headers: &[],
        },
        invalid: Answer {
            status: 400,
            body: r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: Field required (sim:invalid)"},"request_id":"{request_id}"}"#,
            headers: &[],
        },
        content_policy: Answer {
            status: 400,
            body: r#"{"type":"error","error":{"type":"invalid_request_error","message":"Output blocked by content filtering policy"},"request_id":"{request_id}"}"#,
            headers: &[],
        },
        not_found: Answer {
            status: 404,
            body: r#"{"type":"error","error":{"type":"not_found_error","message":"Not found"},"request_id":"{request_id}"}"#,
            headers: &[],
        },
        poll_error: Answer {
            status: 529,
            body: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"{request_id}"}"#,
            headers: &[],
        },
    },
    ok_headers: &[
        ("anthropic-ratelimit-requests-limit", "50"),
        ("anthropic-ratelimit-requests-remaining", "49"),
        ("anthropic-ratelimit-tokens-limit", "40000"),
        ("anthropic-ratelimit-tokens-remaining", "39000"),
    ],
    request_id_header: Some("request-id"),
    extra: &[
        (
            "overloaded",
            Answer {
                status: 529,
                body: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"{request_id}"}"#,
                headers: &[],
            },
        ),
        (
            "too_large",
            Answer {
                status: 413,
                body: r#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."},"request_id":"{request_id}"}"#,
                headers: &[],
            },
        ),
    ],
};

const VERSION_MISSING: Answer = Answer {
    status: 400,
    body: r#"{"type":"error","error":{"type":"invalid_request_error","message":"anthropic-version: header is required"},"request_id":"{request_id}"}"#,
    headers: &[],
};

/// Routes under `/anthropic`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/batches", post(create_batch))
        .route(
            "/v1/messages/batches/{id}",
            get(get_batch).delete(delete_batch),
        )
        .route("/v1/messages/batches/{id}/cancel", post(cancel_batch))
        .route("/v1/messages/batches/{id}/results", get(results))
}

fn version(headers: &HeaderMap) -> Result<(), Response> {
    if header(headers, "anthropic-version").is_some_and(|v| !v.trim().is_empty()) {
        return Ok(());
    }
    let rid = request_id();
    Err(SPEC.stamp(VERSION_MISSING.render(&rid), &rid))
}

fn request_id() -> String {
    format!("req_011{}", ulid::Ulid::new())
}

/// A `Message` answering `params` (a Messages body); `refusal` for `sim:content_policy`.
pub fn message(params: &Value, d: &Directives, tier: &str) -> Value {
    let model = text(params, "model").unwrap_or("claude-sonnet-4-5");
    let input_tokens = (params.to_string().len() / 4) as u64 + 8;
    let tools = params
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty());
    let choice = params.pointer("/tool_choice/type").and_then(Value::as_str);
    let forced = matches!(choice, Some("any" | "tool")) || d.has("tool_call");
    let tool = tools
        .filter(|_| forced && choice != Some("none"))
        .and_then(|t| {
            params
                .pointer("/tool_choice/name")
                .and_then(Value::as_str)
                .or_else(|| t.first()?.get("name")?.as_str())
        });
    let (content, stop, output_tokens) = if d.content_policy {
        (json!([]), "refusal", 1u64)
    } else if let Some(name) = tool {
        (
            json!([{"type": "tool_use", "id": format!("toolu_01{}", ulid::Ulid::new()), "name": name, "input": {"location": "Paris"}}]),
            "tool_use",
            24,
        )
    } else if d.empty_output {
        (json!([]), "end_turn", 1)
    } else {
        let said: String = prompt_key(params).chars().take(80).collect();
        let reply = format!("This is a simulated reply to: {said}");
        let n = reply.split_whitespace().count() as u64 + 1;
        (json!([{"type": "text", "text": reply}]), "end_turn", n)
    };
    json!({
        "id": format!("msg_01{}", ulid::Ulid::new()),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": tier},
    })
}

async fn messages(State(state): State<Arc<SimState>>, headers: HeaderMap, raw: Bytes) -> Response {
    if let Err(resp) = SPEC.authorize(&headers).and_then(|()| version(&headers)) {
        state.stats.bump(P, Counter::CreateRejection);
        return resp;
    }
    let call = match SPEC.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let body = &call.body;
    let valid = text(body, "model").is_some()
        && body.get("max_tokens").is_some_and(Value::is_u64)
        && body
            .get("messages")
            .and_then(Value::as_array)
            .is_some_and(|m| !m.is_empty());
    if !valid {
        return SPEC.reject(&state, &SPEC.errors.invalid, &call.rid);
    }
    if let Some(resp) = SPEC.directed(&state, &call, false) {
        return resp;
    }
    if call.directives.fail {
        return SPEC.reject(&state, &SPEC.errors.server_error, &call.rid);
    }
    SPEC.accept(&state, &call).await;
    SPEC.ok(
        StatusCode::OK,
        &call.rid,
        &message(body, &call.directives, "standard"),
    )
}

async fn create_batch(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if let Err(resp) = SPEC.authorize(&headers).and_then(|()| version(&headers)) {
        state.stats.bump(P, Counter::CreateRejection);
        return resp;
    }
    let call = match SPEC.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let valid = call
        .body
        .get("requests")
        .and_then(Value::as_array)
        .is_some_and(|r| {
            !r.is_empty()
                && r.iter().all(|x| {
                    text(x, "custom_id").is_some() && x.get("params").is_some_and(Value::is_object)
                })
        });
    if !valid {
        return SPEC.reject(&state, &SPEC.errors.invalid, &call.rid);
    }
    if let Some(resp) = SPEC.directed(&state, &call, false) {
        return resp;
    }
    let id = format!("msgbatch_01{}", ulid::Ulid::new());
    let job = SPEC.job(&state, &call, id, "message-batch");
    let created = render(&state, &job, Instant::now());
    if let Some(gateway) = SPEC.created(&state, job, None).await {
        return gateway;
    }
    SPEC.ok(StatusCode::OK, &call.rid, &created)
}

fn requests(job: &Job) -> Vec<Value> {
    job.input
        .get("requests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// How one batch request ends: `succeeded`, `errored` (its `sim:fail` / `sim:invalid`).
fn line_kind(request: &Value) -> &'static str {
    let d = Directives::scan_as(request, crate::provider::Provider::Anthropic);
    if d.fail || d.invalid {
        "errored"
    } else {
        "succeeded"
    }
}

/// The `MessageBatch` at `now`.
pub fn render(state: &SimState, job: &Job, now: Instant) -> Value {
    let reqs = requests(job);
    let n = reqs.len();
    let created = job.created_wall;
    let phase = job.phase(now);
    let (status, ended) = match phase {
        Phase::Queued | Phase::Running => ("in_progress", false),
        Phase::Done(_) | Phase::Canceled => ("ended", true),
    };
    let count = |k: &str| reqs.iter().filter(|r| line_kind(r) == k).count();
    let counts = if !ended {
        json!({"processing": n, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0})
    } else if phase == Phase::Canceled {
        json!({"processing": 0, "succeeded": 0, "errored": 0, "canceled": n, "expired": 0})
    } else {
        json!({"processing": 0, "succeeded": count("succeeded"), "errored": count("errored"), "canceled": 0, "expired": 0})
    };
    let at = |d: std::time::Duration| rfc3339(created + d, 6);
    let ended_at = job.terminal_after(now).map(at);
    json!({
        "id": job.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "created_at": rfc3339(created, 6),
        "expires_at": at(std::time::Duration::from_secs(86_400)),
        "ended_at": ended_at,
        "cancel_initiated_at": job.canceled_after.map(at),
        "archived_at": null,
        "results_url": ended.then(|| format!("{}/v1/messages/batches/{}/results", state.base_url(P), job.id)),
    })
}

async fn get_batch(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let job = match SPEC.read(&state, &headers, &id) {
        Ok(j) => j,
        Err(resp) => return resp,
    };
    SPEC.ok(
        StatusCode::OK,
        &request_id(),
        &render(&state, &job, Instant::now()),
    )
}

async fn cancel_batch(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (job, changed) = match SPEC.cancel(&state, &headers, &id) {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let mut out = render(&state, &job, Instant::now());
    if changed {
        // The answer to the cancel itself: `canceling`; the next read shows `ended`.
        out["processing_status"] = json!("canceling");
        out["ended_at"] = Value::Null;
        out["results_url"] = Value::Null;
    }
    SPEC.ok(StatusCode::OK, &request_id(), &out)
}

async fn delete_batch(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = SPEC.authorize(&headers) {
        return resp;
    }
    let rid = request_id();
    let now = Instant::now();
    match state.jobs.get(P, &id) {
        Some(job) if job.phase(now).is_terminal() && !job.deleted => {
            state.jobs.update(P, &id, |j| j.deleted = true);
            SPEC.ok(
                StatusCode::OK,
                &rid,
                &json!({"id": id, "type": "message_batch_deleted"}),
            )
        }
        Some(job) if !job.deleted => {
            let answer = Answer {
                status: 400,
                body: r#"{"type":"error","error":{"type":"invalid_request_error","message":"Batch is still in progress; cancel it before deleting."},"request_id":"{request_id}"}"#,
                headers: &[],
            };
            SPEC.stamp(answer.render(&rid), &rid)
        }
        _ => SPEC.stamp(SPEC.errors.not_found.render(&rid), &rid),
    }
}

/// `GET …/results`: JSONL (`application/x-jsonl`), in reverse order of the requests (the
/// order is not guaranteed by the API, so clients must key on `custom_id`).
async fn results(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = SPEC.authorize(&headers) {
        return resp;
    }
    let rid = request_id();
    let now = Instant::now();
    let Some(job) = state
        .jobs
        .get(P, &id)
        .filter(|j| j.phase(now).is_terminal() && !j.deleted)
    else {
        return SPEC.stamp(SPEC.errors.not_found.render(&rid), &rid);
    };
    state.stats.bump(P, Counter::ResultFetch);
    let canceled = job.phase(now) == Phase::Canceled;
    let mut out = String::new();
    for r in requests(&job).iter().rev() {
        let custom_id = r.get("custom_id").cloned().unwrap_or(Value::Null);
        let params = r.get("params").cloned().unwrap_or(Value::Null);
        let result = match (canceled, line_kind(r)) {
            (true, _) => json!({"type": "canceled"}),
            (false, "errored") => json!({"type": "errored", "error": {"type": "error",
                "error": {"type": "api_error", "message": "Internal server error"}, "request_id": request_id()}}),
            _ => {
                json!({"type": "succeeded", "message": message(&params, &Directives::scan_as(&params, crate::provider::Provider::Anthropic), "batch")})
            }
        };
        out.push_str(&json!({"custom_id": custom_id, "result": result}).to_string());
        out.push('\n');
    }
    SPEC.stamp(
        ([("content-type", "application/x-jsonl")], out).into_response(),
        &rid,
    )
}
