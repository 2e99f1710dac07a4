//! `POST /v1/executions`, `GET /v1/executions/{id}`, `POST /v1/executions/{id}/cancel`.

use crate::ApiState;
use crate::auth::authorize;
use crate::problem::Problem;
use crate::view::ExecutionView;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use executor_lifecycle::{CreateRequest, Guard, TransitionRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
#[allow(unused_imports)]
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The create body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"model": "openai/gpt-image-1", "input": {"prompt": "a lighthouse at dusk"}}))]
pub struct CreateBody {
    /// The model id (`owner/name`, see `GET /v1/models`).
    pub model: String,
    /// The model's input; validated against the model's input JSON Schema.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Value,
    /// Where to deliver the outcome (Standard Webhooks signed POST).
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Deadline of the whole execution, capped by the model's own.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_duration_seconds: Option<u64>,
    /// Models to fall back on, in order, when an attempt fails with `provider_unavailable`,
    /// `rate_limited`, `timeout`, `provider_transient` or `partial_result` (an empty output):
    /// one execution, the next model's attempt. The input is mapped to each (the fields its
    /// schema has) and validated at create; at most 4. A step is a model id, or an object
    /// that maps the input to it: `{"model": ..., "rename": {"from": "to"}, "input": {...}}`
    /// (fields renamed, then the fields its schema declares kept, then `input` set).
    #[serde(default)]
    pub fallbacks: Vec<FallbackStep>,
    /// Times a job that failed after it was created with `provider_transient` or
    /// `provider_unavailable` runs again on the same model, after a backoff, before the
    /// chain moves on (for every model of the chain; absent: each model's own
    /// `limits.job_retries`, 0 unless its bundle says otherwise). Each retry is an attempt.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3)]
    pub retries: Option<u32>,
}

/// One fallback of a chain: a model id, or a model with its input mapping.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FallbackStep {
    /// The model id; it gets the fields of the input its schema declares.
    Model(String),
    /// A model and how the input maps to it.
    Mapped(MappedStep),
}

/// A fallback with its input mapping.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappedStep {
    /// The model id.
    pub model: String,
    /// Input fields renamed for this model, `{"from": "to"}`; `to` must be a field of its
    /// schema.
    #[serde(default)]
    pub rename: std::collections::BTreeMap<String, String>,
    /// Fields set on this model's input after the rename and the selection.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: serde_json::Map<String, Value>,
}

impl From<FallbackStep> for executor_lifecycle::fallback::Target {
    fn from(s: FallbackStep) -> Self {
        match s {
            FallbackStep::Model(m) => m.into(),
            FallbackStep::Mapped(m) => executor_lifecycle::fallback::Target {
                model: m.model,
                rename: m.rename,
                input: m.input,
            },
        }
    }
}

/// The chain of a body, as the lifecycle takes it.
pub(crate) fn targets(steps: Vec<FallbackStep>) -> Vec<executor_lifecycle::fallback::Target> {
    steps.into_iter().map(Into::into).collect()
}

/// The timeline of an execution.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    /// Always `list`.
    #[schema(value_type = String, example = "list")]
    pub object: &'static str,
    /// The execution.
    pub execution_id: String,
    /// Every committed transition, oldest first.
    pub data: Vec<TimelineEntry>,
    /// Provider jobs whose ids arrived after their submit had been resolved without them
    /// (each canceled at the provider); absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub late_jobs: Vec<executor_lifecycle::LateJob>,
}

/// One committed transition. `from` and `to` are the lifecycle's internal statuses
/// (docs/transitions.md); `status` and `delivery` are what a client read after it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// The transition record.
    #[serde(flatten)]
    pub record: TransitionRecord,
    /// The public status after this transition (`queued`, `starting`, `processing`, or the
    /// outcome).
    pub status: crate::view::PublicStatus,
    /// The outcome delivery's state after this transition (from the terminal one on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<crate::view::DeliveryState>,
    /// RFC 3339 time of the commit.
    pub at: String,
    /// Milliseconds since the execution was accepted.
    pub since_created_ms: i64,
}

/// Parses a JSON body into `T`, naming the failing field in the problem.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, Problem> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the body as Content-Type: application/json",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error_like(de)?;
    // One JSON value and nothing after it but whitespace: `{"model": ...} x` is not a body
    // this API understood.
    de.end().map_err(|e| {
        Problem::invalid("/", format!("invalid JSON body: {e} after the JSON value"))
    })?;
    Ok(value)
}

fn serde_path_to_error_like<T: serde::de::DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
) -> Result<T, Problem> {
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner().to_string();
        let path = e.path().to_string();
        let field = match field_of(&inner) {
            Some(name) if path == "." => format!("/{name}"),
            Some(name) if pointer_of(&path).ends_with(&format!("/{name}")) => pointer_of(&path),
            Some(name) => format!("{}/{name}", pointer_of(&path)),
            None if path == "." => "/".to_string(),
            None => pointer_of(&path),
        };
        Problem::invalid(&field, format!("invalid JSON body: {inner}"))
    })
}

/// A JSON pointer of a serde_path_to_error path (`input.size` → `/input/size`).
fn pointer_of(path: &str) -> String {
    if path == "." {
        return "/".into();
    }
    let mut out = String::new();
    for seg in path.split('.') {
        let seg = seg.trim_start_matches('[').trim_end_matches(']');
        out.push('/');
        out.push_str(&seg.replace('~', "~0").replace('/', "~1"));
    }
    out
}

/// The field a serde error names (missing and unknown fields are reported at their parent).
fn field_of(msg: &str) -> Option<String> {
    for marker in ["missing field `", "unknown field `"] {
        if let Some(rest) = msg.split(marker).nth(1)
            && let Some(name) = rest.split('`').next()
        {
            return Some(name.to_string());
        }
    }
    None
}

/// `Prefer: wait=N` (or `wait`), capped.
fn prefer_wait(headers: &HeaderMap, max: u64) -> Option<u64> {
    let v = headers.get("prefer")?.to_str().ok()?;
    v.split([',', ';']).map(str::trim).find_map(|p| {
        if p == "wait" {
            Some(max)
        } else {
            p.strip_prefix("wait=")
                .and_then(|n| n.parse::<u64>().ok())
                .map(|n| n.min(max))
        }
    })
}

/// Creates an execution.
///
/// Immediate models answer `201` with the outcome when they finish within the request; other
/// models (and immediate ones when the in-request capacity is busy) answer `202` and run in
/// the background. `Prefer: wait=N` waits up to N seconds for the outcome. A retry with the
/// same `Idempotency-Key` and body returns the same execution (`200`, `Idempotent-Replayed`).
#[utoipa::path(
    post,
    path = "/v1/executions",
    tag = "executions",
    operation_id = "create_execution",
    request_body(content = CreateBody, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the same execution; another body with it is a 409"),
        ("Prefer" = Option<String>, Header, description = "`wait=N`: wait up to N seconds (capped by the server) for the outcome before answering", example = "wait=30"),
    ),
    responses(
        (status = 200, description = "An idempotent replay: the execution created earlier with this Idempotency-Key", body = ExecutionView,
            headers(("Location" = String, description = "The execution's URL"), ("Idempotent-Replayed" = String, description = "`true`"))),
        (status = 201, description = "Created and already terminal (immediate models, or `Prefer: wait`)", body = ExecutionView,
            headers(("Location" = String, description = "The execution's URL"), ("Preference-Applied" = String, description = "`wait=N` when Prefer was honoured"))),
        (status = 202, description = "Accepted; runs in the background", body = ExecutionView,
            headers(("Location" = String, description = "The execution's URL"), ("Preference-Applied" = String, description = "`wait=N` when Prefer was honoured"))),
        (status = 400, description = "Invalid body or input (the failing field is a JSON pointer)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "The estimated cost does not fit a budget of the tenant (`budget`, `estimate_usd`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with a different body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than the API accepts", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable; retry with the same Idempotency-Key", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn create(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let parsed: CreateBody = parse_body(&headers, &body)?;
    let idempotency_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    Problem::invalid("/headers/idempotency-key", "Idempotency-Key must be ASCII")
                })?
                .to_string(),
        ),
        None => None,
    };
    let wait = prefer_wait(&headers, state.config.max_wait_seconds);
    let req = CreateRequest {
        fallbacks: targets(parsed.fallbacks),
        retries: parsed.retries,
        model: parsed.model,
        input: parsed.input,
        webhook_url: parsed.webhook_url,
        idempotency_key,
        max_duration_seconds: parsed.max_duration_seconds,
        rerun_of: None,
        batch: None,
    };
    // Inline submits and the wait are the lifecycle's (executor_lifecycle::inline).
    let accepted = state
        .engine
        .accept(&tenant, req, &state.inline, wait.map(Duration::from_secs))
        .await?;
    let guard = accepted.guard.clone();
    let status = if accepted.replayed {
        StatusCode::OK
    } else if guard.status().is_terminal() {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    // The result blob is read for a terminal execution's outputs; if it cannot be read now,
    // the answer still says "accepted" (202) and the client polls.
    let mut resp = match respond(&state, &guard, status).await {
        Ok(r) => r,
        Err(_) => (StatusCode::ACCEPTED, Json(ExecutionView::summary(&guard))).into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/executions/{}", guard.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if accepted.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Some(secs) = wait
        && let Ok(v) = HeaderValue::from_str(&format!("wait={secs}"))
    {
        resp.headers_mut().insert("preference-applied", v);
    }
    Ok(resp)
}

pub(crate) async fn respond(
    state: &ApiState,
    guard: &Guard,
    status: StatusCode,
) -> Result<Response, Problem> {
    let result = state.engine.result(guard).await?;
    Ok((status, Json(ExecutionView::new(guard, result.as_ref()))).into_response())
}

/// Gets an execution (404 for unknown ids and for other tenants' executions).
///
/// `Prefer: wait=N` waits up to N seconds for a terminal status.
#[utoipa::path(
    get,
    path = "/v1/executions/{id}",
    tag = "executions",
    operation_id = "get_execution",
    params(
        ("id" = String, Path, description = "Execution id"),
        ("Prefer" = Option<String>, Header, description = "`wait=N`: wait up to N seconds for a terminal status"),
    ),
    responses(
        (status = 200, description = "The execution", body = ExecutionView),
        (status = 400, description = "The path cannot be decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such execution (or another tenant's)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn get_one(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let mut guard = state.engine.get(&tenant, &id).await?;
    if let Some(secs) = prefer_wait(&headers, state.config.max_wait_seconds) {
        guard = state
            .engine
            .wait_terminal(&tenant, guard, Duration::from_secs(secs))
            .await?;
    }
    respond(&state, &guard, StatusCode::OK).await
}

/// Requests cancellation; returns the execution (202 while cancel is pending).
///
/// Canceling a terminal execution changes nothing and answers 200 with it.
#[utoipa::path(
    post,
    path = "/v1/executions/{id}/cancel",
    tag = "executions",
    operation_id = "cancel_execution",
    params(("id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, description = "Already terminal (canceled or otherwise)", body = ExecutionView),
        (status = 202, description = "Cancel recorded; the execution stops at its next step", body = ExecutionView),
        (status = 400, description = "The path cannot be decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such execution (or another tenant's)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn cancel(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let guard = state.engine.cancel(&tenant, &id).await?;
    let status = if guard.status().is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    respond(&state, &guard, status).await
}

/// The execution's timeline: every committed transition with time, version, action, provider
/// calls, failure and details.
#[utoipa::path(
    get,
    path = "/v1/executions/{id}/events",
    tag = "executions",
    operation_id = "execution_events",
    params(("id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, description = "The timeline, oldest first (JSON); with `Accept: text/event-stream`, the same as Server-Sent Events (`transition` events whose id resumes with `Last-Event-ID`, then `end` with the execution), until the execution is final", body = Timeline),
        (status = 400, description = "The path cannot be decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such execution (or another tenant's)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn events(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let guard = state.engine.get(&tenant, &id).await?;
    if wants_event_stream(&headers) {
        let after = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        return Ok(event_stream(state, tenant, id, guard.created_at_ms, after).into_response());
    }
    let records = state.engine.transitions(&id).await?;
    let data = records
        .into_iter()
        .map(|record| timeline_entry(record, guard.created_at_ms, guard.hot.outcome))
        .collect();
    let late_jobs = state.engine.late_jobs(&id).await?;
    Ok(Json(Timeline {
        object: "list",
        execution_id: id,
        data,
        late_jobs,
    })
    .into_response())
}

/// A timeline entry: the record, its time, and the public status and delivery after it.
fn timeline_entry(
    record: TransitionRecord,
    created_at_ms: i64,
    outcome: Option<executor_lifecycle::Status>,
) -> TimelineEntry {
    TimelineEntry {
        at: crate::view::rfc3339(record.at_ms),
        since_created_ms: record.at_ms - created_at_ms,
        status: crate::view::PublicStatus::of_internal(
            record.to,
            outcome.or(record.from.filter(|s| s.is_terminal() && !s.is_final())),
        ),
        delivery: crate::view::DeliveryState::after(&record),
        record,
    }
}

fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// The timeline as Server-Sent Events: one `transition` event per committed transition (its id
/// is the transition's position, 1-based, so `Last-Event-ID` resumes after it), then an `end`
/// event with the execution once it is final, and the stream closes. A stream lasts at most
/// `inline_max_seconds` when that is set (API Gateway buffers a Lambda's answer and cuts it
/// at 29 s: there the stream is a long poll that the client resumes with `Last-Event-ID`, as
/// `EventSource` does by itself after `retry`), else ten minutes.
fn event_stream(
    state: Arc<ApiState>,
    tenant: String,
    id: String,
    created_at_ms: i64,
    after: usize,
) -> axum::response::sse::Sse<
    impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let budget = match state.config.inline_max_seconds {
        0 => Duration::from_secs(600),
        s => Duration::from_secs(s.saturating_sub(5).max(1)),
    };
    let until = tokio::time::Instant::now() + budget;
    struct Cursor {
        sent: usize,
        pending: std::collections::VecDeque<Event>,
        done: bool,
    }
    let start = Cursor {
        sent: after,
        pending: Default::default(),
        done: false,
    };
    let stream = futures::stream::unfold(start, move |mut c| {
        let state = state.clone();
        let tenant = tenant.clone();
        let id = id.clone();
        async move {
            loop {
                if let Some(e) = c.pending.pop_front() {
                    return Some((Ok(e), c));
                }
                if c.done {
                    return None;
                }
                let guard = state.engine.get(&tenant, &id).await.ok();
                let records = state.engine.transitions(&id).await.unwrap_or_default();
                for (i, record) in records.into_iter().enumerate().skip(c.sent) {
                    let outcome = guard.as_ref().and_then(|g| g.hot.outcome);
                    let entry = timeline_entry(record, created_at_ms, outcome);
                    let data = serde_json::to_string(&entry).unwrap_or_default();
                    c.pending.push_back(
                        Event::default()
                            .event("transition")
                            .id((i + 1).to_string())
                            .data(data),
                    );
                    c.sent = i + 1;
                }
                match guard {
                    Some(g) if g.status().is_final() && c.pending.is_empty() => {
                        let result = state.engine.result(&g).await.ok().flatten();
                        let view = crate::view::ExecutionView::new(&g, result.as_ref());
                        c.pending.push_back(
                            Event::default()
                                .event("end")
                                .data(serde_json::to_string(&view).unwrap_or_default()),
                        );
                        c.done = true;
                    }
                    None => {
                        c.pending.push_back(
                            Event::default()
                                .event("error")
                                .data("{\"detail\":\"execution not readable\"}"),
                        );
                        c.done = true;
                    }
                    _ if c.pending.is_empty() => {
                        if tokio::time::Instant::now() >= until {
                            // Resume with Last-Event-ID (EventSource reconnects after `retry`).
                            c.pending.push_back(
                                Event::default()
                                    .retry(Duration::from_millis(500))
                                    .comment("resume with Last-Event-ID"),
                            );
                            c.done = true;
                        } else {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                    _ => {}
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The provider's raw final response: what the adapter normalized the outputs, usage and error
/// from (409 until the execution has ended).
#[utoipa::path(
    get,
    path = "/v1/executions/{id}/raw",
    tag = "executions",
    operation_id = "execution_raw_response",
    params(("id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, description = "The raw provider response", body = crate::view::RawResponse),
        (status = 400, description = "The path cannot be decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such execution (or another tenant's)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ended yet: no final response", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn raw(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let guard = state.engine.get(&tenant, &id).await?;
    let Some(record) = state.engine.result(&guard).await? else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "not-ended",
            format!(
                "execution {id} is {}: its provider response is not final yet",
                crate::view::PublicStatus::of(&guard)
            ),
        ));
    };
    let raw = match &record.result {
        Some(r) if !r.raw.is_null() => r.raw.clone(),
        _ => record.raw.clone(),
    };
    Ok(Json(crate::view::RawResponse {
        object: "raw_response",
        execution_id: id,
        status: crate::view::PublicStatus::of_outcome(record.status),
        raw,
    })
    .into_response())
}

/// Delivers the parked outcome of an execution whose `delivery.state` is `degraded` again (the
/// same event id, so a receiver that got it after all deduplicates); on success its delivery
/// becomes `delivered` (its `status`, the outcome, does not change).
#[utoipa::path(
    post,
    path = "/v1/executions/{id}/redrive",
    tag = "executions",
    operation_id = "redrive_execution",
    params(("id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, description = "Delivered: `delivery.state` is `delivered`", body = ExecutionView),
        (status = 400, description = "The path cannot be decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such execution (or another tenant's)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The execution's delivery is not degraded", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 502, description = "The customer endpoint failed again; nothing changed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn redrive(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    use executor_lifecycle::actions::finalize::Redrive;
    let tenant = authorize(&state, &headers).await?;
    let not_degraded = |what: &str| {
        Problem::new(
            StatusCode::CONFLICT,
            "not-degraded",
            format!("only executions whose delivery is degraded can be redriven; this one {what}"),
        )
    };
    match state.engine.redrive(&tenant, &id).await? {
        Redrive::Delivered(g) => respond(&state, &g, StatusCode::OK).await,
        Redrive::NotDegraded(status) => Err(not_degraded(match status {
            s if !s.is_terminal() => "is not terminal yet",
            executor_lifecycle::Status::Finalized => "is finalized (delivery delivered or none)",
            _ => "has its delivery pending",
        })),
        Redrive::Failed(f) => {
            let mut p = Problem::new(
                StatusCode::BAD_GATEWAY,
                "delivery-failed",
                format!("outcome delivery failed again: {}", f.message),
            );
            p.error_class = Some("degraded_finalization".into());
            Err(p)
        }
        Redrive::Raced => Err(not_degraded("is being redriven by another request")),
    }
}

/// Fuzz entry point (fuzz/, and the stable smoke test): a create body as the API parses it,
/// then the engine-side URL policy on its `webhook_url`; must return, never panic.
#[doc(hidden)]
pub fn fuzz_create_body(data: &[u8]) {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    let body = Bytes::copy_from_slice(data);
    if let Ok(b) = parse_body::<CreateBody>(&headers, &body)
        && let Some(url) = &b.webhook_url
    {
        let _ = executor_lifecycle::netguard::OutboundPolicy::default().check_url(url);
    }
}

/// How long a presigned media URL stays valid.
const MEDIA_URL_TTL: std::time::Duration = std::time::Duration::from_secs(900);

/// Media stored by this deployment — provider outputs re-hosted by a bundle (`file-handler`
/// `rehost`) and inline outputs (images, audio) stored at ingestion — at a stable URL that
/// needs no API key (its name is the SHA-256 of the bytes, a capability). On AWS the answer
/// is a `307` redirect to a presigned S3 URL valid for 15 minutes (the bytes never pass
/// through Lambda); embedded, the bytes themselves.
#[utoipa::path(
    get,
    path = "/v1/media/{execution_id}/{name}",
    tag = "executions",
    operation_id = "get_media",
    security(()),
    params(
        ("execution_id" = String, Path, description = "Execution id"),
        ("name" = String, Path, description = "`<sha256 hex>.<ext>`"),
    ),
    responses(
        (status = 200, description = "The bytes, typed by the name's extension", content(
            (Vec<u8> = "image/*"),
            (Vec<u8> = "audio/*"),
            (Vec<u8> = "video/*"),
            (Vec<u8> = "application/json"),
            (Vec<u8> = "text/plain"),
            (Vec<u8> = "application/octet-stream"),
        )),
        (status = 307, description = "On S3: a redirect to a presigned URL of the bytes",
            headers(("Location" = String, description = "The presigned URL (15 minutes)"))),
        (status = 400, description = "The path cannot be decoded", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such media", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn media(
    State(state): State<Arc<ApiState>>,
    Path((execution_id, name)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no media {execution_id}/{name}"),
        )
    };
    let key = executor_lifecycle::blobs::media_key(&execution_id, &name).ok_or_else(not_found)?;
    let mime = executor_lifecycle::blobs::media_mime(&name);
    let unavailable = |e: executor_lifecycle::StoreError| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    };
    // On S3: a redirect to a short-lived presigned URL, so the bytes never pass through the
    // function (Lambda answers 6 MB at most; a video is more).
    if let Some(url) = state
        .engine
        .ports()
        .blobs
        .presigned_get(&key, mime, MEDIA_URL_TTL)
        .await
        .map_err(unavailable)?
    {
        return Ok((
            StatusCode::TEMPORARY_REDIRECT,
            [
                (axum::http::header::LOCATION, url),
                (
                    axum::http::header::CACHE_CONTROL,
                    format!("private, max-age={}", MEDIA_URL_TTL.as_secs() / 2),
                ),
            ],
        )
            .into_response());
    }
    let bytes = state
        .engine
        .ports()
        .blobs
        .get(&key)
        .await
        .map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        })?
        .ok_or_else(not_found)?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, mime),
            (
                axum::http::header::CACHE_CONTROL,
                "public, max-age=31536000, immutable",
            ),
        ],
        bytes,
    )
        .into_response())
}
