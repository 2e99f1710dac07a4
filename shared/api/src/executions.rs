//! `POST /v1/executions`, `GET /v1/executions/{id}`, `POST /v1/executions/{id}/cancel`.

use crate::ApiState;
use crate::auth::tenant;
use crate::problem::Problem;
use crate::view::ExecutionView;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use executor_lifecycle::{CreateRequest, Guard, Message, Shape};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The create body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    model: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default)]
    max_duration_seconds: Option<u64>,
}

/// Parses a JSON body into `T`, naming the failing field in the problem.
fn parse_body<T: serde::de::DeserializeOwned>(
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
    serde_path_to_error_like(de)
}

fn serde_path_to_error_like<T: serde::de::DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
) -> Result<T, Problem> {
    T::deserialize(de).map_err(|e| {
        let msg = e.to_string();
        let field = field_of(&msg);
        Problem::invalid(&field, format!("invalid JSON body: {msg}"))
    })
}

/// Best-effort pointer of the field a serde error names.
fn field_of(msg: &str) -> String {
    for marker in ["missing field `", "unknown field `"] {
        if let Some(rest) = msg.split(marker).nth(1)
            && let Some(name) = rest.split('`').next()
        {
            return format!("/{name}");
        }
    }
    if msg.contains("model") {
        return "/model".into();
    }
    "/".into()
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
pub async fn create(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let tenant = tenant(&headers, state.tenants.as_ref()).await?;
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
    let engine = state.engine.clone();
    let immediate = engine
        .ports()
        .catalog
        .get(&parsed.model)
        .map(|d| d.spec().shape == Shape::Immediate)
        .unwrap_or(false);
    let permit = if immediate {
        state.inline_permits.clone().try_acquire_owned().ok()
    } else {
        None
    };
    let req = CreateRequest {
        model: parsed.model,
        input: parsed.input,
        webhook_url: parsed.webhook_url,
        idempotency_key,
        max_duration_seconds: parsed.max_duration_seconds,
    };
    let accepted = engine.create(&tenant, req, permit.is_some()).await?;
    let mut guard = accepted.guard;
    if let Some(permit) = permit
        && !accepted.replayed
    {
        // Run in a task so a client hanging up doesn't abort the submit mid-call.
        let e = engine.clone();
        let msg = Message {
            execution_id: guard.id.clone(),
            version: Some(0),
        };
        let handle = tokio::spawn(async move {
            let r = e.handle(&msg).await;
            drop(permit);
            r
        });
        match handle.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(execution_id = %guard.id, error = %e, "inline submit failed; the watchdog will resume it")
            }
            Err(e) => {
                tracing::warn!(execution_id = %guard.id, error = %e, "inline submit task failed")
            }
        }
        guard = engine.get(&tenant, &guard.id).await?;
    }
    if let Some(secs) = wait {
        guard = wait_terminal(&state, &tenant, guard, secs).await?;
    }
    let status = if accepted.replayed {
        StatusCode::OK
    } else if guard.status().is_terminal() {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    let mut resp = respond(&state, &guard, status).await?;
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

async fn wait_terminal(
    state: &ApiState,
    tenant: &str,
    mut guard: Guard,
    secs: u64,
) -> Result<Guard, Problem> {
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !guard.status().is_terminal() && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(25)).await;
        guard = state.engine.get(tenant, &guard.id).await?;
    }
    Ok(guard)
}

async fn respond(state: &ApiState, guard: &Guard, status: StatusCode) -> Result<Response, Problem> {
    let result = state.engine.result(guard).await?;
    Ok((status, Json(ExecutionView::new(guard, result.as_ref()))).into_response())
}

/// Gets an execution (404 for unknown ids and for other tenants' executions).
pub async fn get_one(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let tenant = tenant(&headers, state.tenants.as_ref()).await?;
    let mut guard = state.engine.get(&tenant, &id).await?;
    if let Some(secs) = prefer_wait(&headers, state.config.max_wait_seconds) {
        guard = wait_terminal(&state, &tenant, guard, secs).await?;
    }
    respond(&state, &guard, StatusCode::OK).await
}

/// Requests cancellation; returns the execution (202 while cancel is pending).
pub async fn cancel(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let tenant = tenant(&headers, state.tenants.as_ref()).await?;
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
pub async fn events(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let tenant = tenant(&headers, state.tenants.as_ref()).await?;
    let guard = state.engine.get(&tenant, &id).await?;
    let records = state.engine.transitions(&id).await?;
    let data: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            v["at"] = Value::String(crate::view::rfc3339(r.at_ms));
            v["since_created_ms"] = Value::from(r.at_ms - guard.created_at_ms);
            v
        })
        .collect();
    Ok(
        Json(serde_json::json!({"object": "list", "execution_id": id, "data": data}))
            .into_response(),
    )
}
