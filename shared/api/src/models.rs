//! `GET /v1/models` and `GET /v1/models/{owner}/{name}`: the bundles this deployment serves,
//! with their input schemas.

use crate::ApiState;
use crate::auth::tenant;
use crate::problem::Problem;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use executor_lifecycle::ModelSpec;
use serde_json::{Value, json};
use std::sync::Arc;

fn model_json(s: &ModelSpec) -> Value {
    json!({
        "id": s.id,
        "object": "model",
        "provider": s.provider,
        "shape": s.shape.as_str(),
        "description": s.description,
        "max_duration_seconds": s.max_duration_ms / 1000,
        "input_schema": s.input_schema,
    })
}

/// Lists models.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, Problem> {
    tenant(&headers, state.tenants.as_ref()).await?;
    let data: Vec<Value> = state
        .engine
        .ports()
        .catalog
        .list()
        .iter()
        .map(|d| model_json(d.spec()))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// One model.
pub async fn get_one(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    tenant(&headers, state.tenants.as_ref()).await?;
    let id = format!("{owner}/{name}");
    match state.engine.ports().catalog.get(&id) {
        Some(d) => Ok(Json(model_json(d.spec()))),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no model '{id}'"),
        )),
    }
}
