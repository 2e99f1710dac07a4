//! `POST /v1/webhooks/{provider}/{execution_id}`: provider callbacks. No API key: the
//! provider's signature is the authentication (checked by the model's adapter).

use crate::ApiState;
use crate::problem::Problem;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::sync::Arc;

/// Receives a callback: 200 when stored (or a duplicate), 401 when verification fails, 404
/// for an unknown execution or provider.
pub async fn receive(
    State(state): State<Arc<ApiState>>,
    Path((provider, execution_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    if !executor_lifecycle::keys::is_execution_id(&execution_id) {
        return Err(Problem::execution_not_found());
    }
    let pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), v.to_string()))
        })
        .collect();
    let new = state
        .engine
        .receive_callback(&provider, &execution_id, &pairs, &body)
        .await?;
    Ok(Json(json!({"received": true, "duplicate": !new})))
}
