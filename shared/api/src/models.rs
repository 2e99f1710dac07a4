//! `GET /v1/models` and `GET /v1/models/{owner}/{name}`: the bundles this deployment serves,
//! with their input JSON Schemas.

use crate::ApiState;
use crate::auth::authorize;
use crate::problem::Problem;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use executor_lifecycle::{ModelSpec, Shape};
use serde::{Deserialize, Serialize};
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
    /// What it makes: `text`, `image`, `image_edit`, `video`, `speech`, `transcription`,
    /// `audio`, `3d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    /// How it is priced: the billing `unit`, its prices, and a `summary` line.
    #[schema(value_type = Object)]
    #[serde(skip_serializing_if = "Value::is_null")]
    pub pricing: Value,
    /// Whether this deployment can run it (its provider's credentials are configured).
    pub available: bool,
    /// The credentials it lacks when it is not available (the environment variables or
    /// secret keys to set).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_credentials: Vec<String>,
    /// The provider's documentation of the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<String>,
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
    /// Aliases naming fallback chains: a create of the alias runs the first model with the
    /// others as its fallbacks.
    pub aliases: Vec<AliasView>,
}

/// An alias of a fallback chain.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AliasView {
    /// The alias (what a create names as its `model`).
    pub id: String,
    /// The chain, in order.
    pub models: Vec<String>,
    /// Whether every model of the chain is served here.
    pub available: bool,
}

fn view(d: &dyn executor_lifecycle::ModelDriver) -> ModelView {
    let s: &ModelSpec = d.spec();
    let l = d.listing();
    let text = |k: &str| l[k].as_str().map(str::to_string);
    ModelView {
        id: s.id.clone(),
        object: "model",
        provider: s.provider.clone(),
        shape: s.shape,
        description: s.description.clone(),
        max_duration_seconds: s.max_duration_ms / 1000,
        modality: text("modality"),
        pricing: l["pricing"].clone(),
        available: l["available"].as_bool().unwrap_or(true),
        missing_credentials: l["missing_credentials"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        docs_url: text("docs_url"),
        input_schema: s.input_schema.clone(),
    }
}

/// Filters of the model list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelFilter {
    /// Only models that make this (`text`, `image`, `image_edit`, `video`, `speech`,
    /// `transcription`, `audio`, `3d`).
    pub modality: Option<String>,
    /// Only this provider's models.
    pub provider: Option<String>,
    /// Only models this deployment can run (`true`) or cannot (`false`).
    pub available: Option<bool>,
}

/// Lists the models served.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "models",
    operation_id = "list_models",
    params(ModelFilter),
    responses(
        (status = 200, description = "Every model", body = ModelList),
        (status = 400, description = "A malformed filter (names the parameter)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    filter: Result<Query<ModelFilter>, QueryRejection>,
) -> Result<Json<ModelList>, Problem> {
    authorize(&state, &headers).await?;
    let Query(filter) =
        filter.map_err(|e| Problem::bad_query("available", format!("query: {}", e.body_text())))?;
    let data = state
        .engine
        .ports()
        .catalog
        .list()
        .iter()
        .map(|d| view(d.as_ref()))
        .filter(|m| {
            filter
                .modality
                .as_deref()
                .is_none_or(|x| m.modality.as_deref() == Some(x))
                && filter.provider.as_deref().is_none_or(|p| m.provider == p)
                && filter.available.is_none_or(|a| m.available == a)
        })
        .collect();
    let catalog = &state.engine.ports().catalog;
    let aliases = state
        .engine
        .config()
        .aliases
        .iter()
        .map(|(id, models)| AliasView {
            id: id.clone(),
            models: models.iter().map(|t| t.model.clone()).collect(),
            available: models.iter().all(|t| catalog.get(&t.model).is_some()),
        })
        .collect();
    Ok(Json(ModelList {
        object: "list",
        data,
        aliases,
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
        Some(d) => Ok(Json(view(d.as_ref()))),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no model '{id}'"),
        )),
    }
}
