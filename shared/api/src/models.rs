//! `GET /v1/models` and `GET /v1/models/{owner}/{name}`: the bundles this deployment serves,
//! with their input JSON Schemas.

use crate::ApiState;
use crate::auth::authorize;
use crate::problem::Problem;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use executor_lifecycle::{ModelSpec, Shape};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// A model this deployment serves.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelView {
    /// `owner/name`.
    pub id: String,
    /// Always `model`.
    #[schema(value_type = String, example = "model")]
    pub object: &'static str,
    /// The provider it runs on.
    pub provider: String,
    /// How the provider answers.
    pub shape: Shape,
    /// What it does.
    pub description: String,
    /// Longest an execution may run.
    pub max_duration_seconds: u64,
    /// The JSON Schema (draft 2020-12) its `input` is validated against.
    #[schema(value_type = Object)]
    pub input_schema: Value,
}

/// The models served.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    /// Always `list`.
    #[schema(value_type = String, example = "list")]
    pub object: &'static str,
    /// The models.
    pub data: Vec<ModelView>,
}

fn view(s: &ModelSpec) -> ModelView {
    ModelView {
        id: s.id.clone(),
        object: "model",
        provider: s.provider.clone(),
        shape: s.shape,
        description: s.description.clone(),
        max_duration_seconds: s.max_duration_ms / 1000,
        input_schema: s.input_schema.clone(),
    }
}

/// Lists the models served.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "models",
    operation_id = "list_models",
    responses(
        (status = 200, description = "Every model", body = ModelList),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<ModelList>, Problem> {
    authorize(&state, &headers).await?;
    let data = state
        .engine
        .ports()
        .catalog
        .list()
        .iter()
        .map(|d| view(d.spec()))
        .collect();
    Ok(Json(ModelList {
        object: "list",
        data,
    }))
}

/// One model, with the JSON Schema of its input.
#[utoipa::path(
    get,
    path = "/v1/models/{owner}/{name}",
    tag = "models",
    operation_id = "get_model",
    params(
        ("owner" = String, Path, description = "Model owner", example = "openai"),
        ("name" = String, Path, description = "Model name", example = "gpt-image-1"),
    ),
    responses(
        (status = 200, description = "The model", body = ModelView),
        (status = 400, description = "The path cannot be decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn get_one(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Json<ModelView>, Problem> {
    authorize(&state, &headers).await?;
    let id = format!("{owner}/{name}");
    match state.engine.ports().catalog.get(&id) {
        Some(d) => Ok(Json(view(d.spec()))),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no model '{id}'"),
        )),
    }
}
