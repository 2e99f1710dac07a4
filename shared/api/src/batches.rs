//! `POST /v1/executions/{id}/rerun`, `POST /v1/batches`, `GET /v1/batches/{id}`.
//!
//! A rerun is a new execution with another's stored request (optionally another model),
//! linked both ways. A batch is up to 100 create requests accepted as one, atomic with
//! respect to idempotency; see `executor_lifecycle::batch` for how each is stored.

use crate::ApiState;
use crate::auth::authorize;
use crate::executions::{parse_body, respond};
use crate::problem::Problem;
use crate::view::{ExecutionView, rfc3339};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use executor_lifecycle::batch::{Batch, BatchItem, MAX_BATCH_ITEMS};
use executor_lifecycle::{Cost, EngineError, Guard};
use serde::{Deserialize, Serialize};
use serde_json::Value;
#[allow(unused_imports)]
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The `Idempotency-Key` header, if sent.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    match headers.get("idempotency-key") {
        Some(v) => Ok(Some(
            v.to_str()
                .map_err(|_| {
                    Problem::invalid("/headers/idempotency-key", "Idempotency-Key must be ASCII")
                })?
                .to_string(),
        )),
        None => Ok(None),
    }
}

/// Validation failures of the body's content are `422` on these routes (the body is JSON
/// of the right shape, its content does not fit); a bad header stays `400`.
fn unprocessable(e: EngineError) -> Problem {
    let invalid_content = matches!(&e, EngineError::Invalid(f)
        if !f.field.as_deref().unwrap_or("").starts_with("/headers/"));
    let mut p = Problem::from(e);
    if invalid_content {
        p.status = StatusCode::UNPROCESSABLE_ENTITY.as_u16();
        p.title = "Unprocessable Content".into();
    }
    p
}

/// The rerun body (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"model": "black-forest-labs/flux-schnell"}))]
pub struct RerunBody {
    /// Another model to run the same input on (validated against its input schema); the
    /// original's model when absent.
    #[serde(default)]
    pub model: Option<String>,
}

/// Reruns an execution: a new execution with the same request (input, webhook, duration),
/// optionally on another model, linked both ways (`rerun_of` on the new one, `reruns` on the
/// original).
///
/// Answers like a create: `201` when already terminal (immediate models), `202` otherwise,
/// `200` for a retry with the same `Idempotency-Key`. Another model whose input schema the
/// stored input does not fit is a `422` naming the field.
#[utoipa::path(
    post,
    path = "/v1/executions/{id}/rerun",
    tag = "executions",
    operation_id = "rerun_execution",
    params(
        ("id" = String, Path, description = "The execution to rerun"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key, execution and body return the same rerun; another request with it is a 409"),
    ),
    request_body(content = Option<RerunBody>, content_type = "application/json", description = "Optional: `{\"model\": ...}` to rerun on another model"),
    responses(
        (status = 200, description = "An idempotent replay: the rerun created earlier with this Idempotency-Key", body = ExecutionView,
            headers(("Location" = String, description = "The rerun's URL"), ("Idempotent-Replayed" = String, description = "`true`"))),
        (status = 201, description = "Created and already terminal", body = ExecutionView,
            headers(("Location" = String, description = "The rerun's URL"))),
        (status = 202, description = "Accepted; the rerun runs in the background", body = ExecutionView,
            headers(("Location" = String, description = "The rerun's URL"))),
        (status = 400, description = "Invalid body or header (the failing field is a JSON pointer)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such execution (or another tenant's)", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "The estimated cost does not fit a budget of the tenant (`budget`, `estimate_usd`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with a different request, or the execution has as many reruns as it may have (100)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than the API accepts", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The stored input does not fit the other model (the field is a JSON pointer), or the model is unknown", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable; retry with the same Idempotency-Key", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn rerun(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let parsed: RerunBody = if body.iter().all(u8::is_ascii_whitespace) {
        RerunBody::default()
    } else {
        // `null` is the document's "no body" too.
        parse_body::<Option<RerunBody>>(&headers, &body)?.unwrap_or_default()
    };
    let key = idempotency_key(&headers)?;
    let accepted = state
        .engine
        .rerun(&tenant, &id, parsed.model, key, &state.inline)
        .await
        .map_err(unprocessable)?;
    let guard = accepted.guard.clone();
    let status = if accepted.replayed {
        StatusCode::OK
    } else if guard.status().is_terminal() {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
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
    Ok(resp)
}

/// One item of a batch.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItemBody {
    /// This item's model (the batch's `model` when absent).
    #[serde(default)]
    pub model: Option<String>,
    /// The model's input; validated against its input JSON Schema.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Value,
    /// Where to deliver this item's outcome (the batch's `webhook_url` when absent).
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Deadline of this item's execution (the batch's when absent).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_duration_seconds: Option<u64>,
    /// Models this item falls back on, in order (as a create's `fallbacks`; the batch's
    /// when absent).
    #[serde(default)]
    pub fallbacks: Option<Vec<crate::executions::FallbackStep>>,
    /// Retries of a failed job on the same model (as a create's `retries`; the batch's when
    /// absent).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3)]
    pub retries: Option<u32>,
}

/// The batch create body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"model": "openai/gpt-image-1", "items": [{"input": {"prompt": "a lighthouse at dusk"}}, {"input": {"prompt": "a lighthouse at dawn"}}]}))]
pub struct BatchBody {
    /// The model of every item that names none.
    #[serde(default)]
    pub model: Option<String>,
    /// The items: 1 to 100, each one execution.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<BatchItemBody>,
    /// Where to deliver each item's outcome, unless the item says otherwise.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Deadline of each item's execution, unless the item says otherwise.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_duration_seconds: Option<u64>,
    /// Models every item falls back on, unless the item says otherwise.
    #[serde(default)]
    pub fallbacks: Vec<crate::executions::FallbackStep>,
    /// Retries of a failed job on the same model, unless the item says otherwise.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3)]
    pub retries: Option<u32>,
}

/// One item of a batch as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchItemView {
    /// Index in the batch.
    pub index: u32,
    /// The item's model.
    pub model: String,
    /// Its execution (absent only if a crash interrupted the batch's creation: a retry of
    /// the batch with the same `Idempotency-Key` creates it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// The execution's status (`not_created` when there is no execution yet).
    pub status: String,
    /// The terminal status reached (`succeeded`, `failed`, `canceled`, `timed_out`), once
    /// there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The error class of a failed item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    /// The cost, once finalized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
}

/// Links of a batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchUrls {
    /// `GET` this batch.
    #[serde(rename = "self")]
    pub self_: String,
    /// `GET` its executions (`GET /v1/executions?batch_id=`).
    pub executions: String,
}

/// A batch: its items' executions, progress counts and outcomes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchView {
    /// `bat_` + ULID.
    pub id: String,
    /// Always `batch`.
    #[schema(value_type = String, example = "batch")]
    pub object: &'static str,
    /// Acceptance time.
    pub created_at: String,
    /// Items in the batch.
    pub total: u32,
    /// Items per status (the executions' `status`; `not_created` for items not created yet).
    pub counts: BTreeMap<String, u32>,
    /// Items per terminal outcome (`succeeded`, `failed`, `canceled`, `timed_out`).
    pub outcomes: BTreeMap<String, u32>,
    /// Items whose provider work is over.
    pub terminal: u32,
    /// True once every item is terminal.
    pub done: bool,
    /// The items' provider cost so far, in micro-dollars (finalized items).
    pub cost_usd_micros: i64,
    /// The items, in order.
    pub items: Vec<BatchItemView>,
    /// Related URLs.
    pub urls: BatchUrls,
}

impl BatchView {
    /// The view of a batch.
    pub fn new(b: &Batch) -> BatchView {
        let mut counts = BTreeMap::new();
        let mut outcomes = BTreeMap::new();
        let mut terminal = 0;
        let mut cost = 0i64;
        let items: Vec<BatchItemView> = b
            .record
            .items
            .iter()
            .zip(&b.executions)
            .enumerate()
            .map(|(i, (item, g))| {
                let v = item_view(i as u32, item, g.as_ref());
                *counts.entry(v.status.clone()).or_insert(0) += 1;
                if let Some(o) = &v.outcome {
                    *outcomes.entry(o.clone()).or_insert(0) += 1;
                }
                if g.as_ref().is_some_and(|g| g.status().is_terminal()) {
                    terminal += 1;
                }
                cost += v.cost.as_ref().map_or(0, |c| c.provider_usd_micros);
                v
            })
            .collect();
        let total = items.len() as u32;
        BatchView {
            id: b.record.id.clone(),
            object: "batch",
            created_at: rfc3339(b.record.created_at_ms),
            total,
            counts,
            outcomes,
            terminal,
            done: terminal == total,
            cost_usd_micros: cost,
            items,
            urls: BatchUrls {
                self_: format!("/v1/batches/{}", b.record.id),
                executions: format!("/v1/executions?batch_id={}", b.record.id),
            },
        }
    }
}

fn item_view(index: u32, item: &BatchItem, g: Option<&Guard>) -> BatchItemView {
    match g {
        Some(g) => {
            // The public status, spelled as the execution view spells it.
            let view = ExecutionView::summary(g);
            BatchItemView {
                index,
                model: g.model.clone(),
                execution_id: Some(g.id.clone()),
                status: view.status.as_str().to_string(),
                outcome: g.hot.outcome.map(|s| s.as_str().to_string()),
                error_class: g.error_class().map(|c| c.as_str().to_string()),
                cost: g.hot.cost.clone(),
            }
        }
        None => BatchItemView {
            index,
            model: item.model.clone(),
            execution_id: None,
            status: "not_created".into(),
            outcome: None,
            error_class: None,
            cost: None,
        },
    }
}

/// Creates a batch: one execution per item (at most 100), atomic with respect to
/// idempotency.
///
/// Every item is validated first: one invalid item is a `422` naming it
/// (`/items/3/input/prompt`) and nothing is created. With an `Idempotency-Key`, a retry
/// creates nothing new and answers the same batch (`200`), completing any item a crash left
/// uncreated. Items run in the background (immediate models too); follow them with
/// `GET /v1/batches/{id}`.
#[utoipa::path(
    post,
    path = "/v1/batches",
    tag = "batches",
    operation_id = "create_batch",
    request_body(content = BatchBody, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the same batch and create nothing new; another body with it is a 409"),
    ),
    responses(
        (status = 200, description = "An idempotent replay: the batch created earlier with this Idempotency-Key", body = BatchView,
            headers(("Location" = String, description = "The batch's URL"), ("Idempotent-Replayed" = String, description = "`true`"))),
        (status = 202, description = "Accepted: every item has its execution, running in the background", body = BatchView,
            headers(("Location" = String, description = "The batch's URL"))),
        (status = 400, description = "Invalid JSON body or header (the failing field is a JSON pointer)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with a different body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than the API accepts", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid item (`field` names it: `/items/{index}/...`), no items, or more than 100; nothing was created", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable; retry with the same Idempotency-Key (it completes the batch without duplicates)", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn create(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let parsed: BatchBody = parse_body(&headers, &body)?;
    let key = idempotency_key(&headers)?;
    if parsed.items.len() > MAX_BATCH_ITEMS {
        let mut p = Problem::invalid(
            "/items",
            format!(
                "a batch holds at most {MAX_BATCH_ITEMS} items; this one has {}: split it",
                parsed.items.len()
            ),
        );
        p.status = StatusCode::UNPROCESSABLE_ENTITY.as_u16();
        p.title = "Unprocessable Content".into();
        return Err(p);
    }
    let mut items = Vec::with_capacity(parsed.items.len());
    for (i, item) in parsed.items.into_iter().enumerate() {
        let Some(model) = item.model.or_else(|| parsed.model.clone()) else {
            let mut p = Problem::invalid(
                &format!("/items/{i}/model"),
                format!("items[{i}] names no model, and the batch has no `model` for it"),
            );
            p.status = StatusCode::UNPROCESSABLE_ENTITY.as_u16();
            p.title = "Unprocessable Content".into();
            return Err(p);
        };
        items.push(BatchItem {
            model,
            input: item.input,
            webhook_url: item.webhook_url.or_else(|| parsed.webhook_url.clone()),
            max_duration_seconds: item.max_duration_seconds.or(parsed.max_duration_seconds),
            fallbacks: crate::executions::targets(
                item.fallbacks.unwrap_or_else(|| parsed.fallbacks.clone()),
            ),
            retries: item.retries.or(parsed.retries),
        });
    }
    let batch = state
        .engine
        .create_batch(&tenant, items, key)
        .await
        .map_err(unprocessable)?;
    let status = if batch.replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut resp = (status, Json(BatchView::new(&batch))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/batches/{}", batch.record.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if batch.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// A batch: progress counts per status, outcomes, cost, and each item's execution.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}",
    tag = "batches",
    operation_id = "get_batch",
    params(("id" = String, Path, description = "Batch id")),
    responses(
        (status = 200, description = "The batch", body = BatchView),
        (status = 400, description = "The path cannot be decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such batch (or another tenant's)", body = Problem, content_type = "application/problem+json"),
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
) -> Result<Json<BatchView>, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let batch = state
        .engine
        .batch(&tenant, &id)
        .await
        .map_err(|e| match e {
            EngineError::NotFound => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "no such batch")
            }
            other => other.into(),
        })?;
    Ok(Json(BatchView::new(&batch)))
}
