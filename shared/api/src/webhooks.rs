//! `POST /v1/webhooks/{provider}/{execution_id}`: provider callbacks. No API key: the
//! provider's signature is the authentication (checked by the model's adapter).

use crate::ApiState;
use crate::problem::Problem;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The chain step a callback URL names (`?step=N`; absent: the first).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackStep {
    /// The fallback chain's step the callback URL was made for (absent: 0, the model asked
    /// for); a callback for another step than the execution's current one is refused (401).
    pub step: Option<u32>,
}

/// What a callback did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallbackReceipt {
    /// Always true: the callback is stored.
    pub received: bool,
    /// True when this callback id was seen before (nothing changed).
    pub duplicate: bool,
}

/// Receives a provider callback: 200 when stored (or a duplicate), 400 when the verified body
/// is not a job payload (a test ping: nothing stored), 401 when verification fails, when the
/// callback is about another job than the execution's (Replicate signs every webhook of an
/// account with one secret) or past the execution's cap of 32 stored callbacks, 404 for an
/// unknown execution or provider. Refusals are recorded on the execution
/// (`callbacks_rejected`).
///
/// Each provider signs its own way: Replicate with Standard Webhooks (`webhook-id`,
/// `webhook-timestamp`, `webhook-signature`), fal with ED25519 (`X-Fal-Webhook-Request-Id`,
/// `X-Fal-Webhook-User-Id`, `X-Fal-Webhook-Timestamp`, `X-Fal-Webhook-Signature`). Unsigned or
/// forged callbacks change nothing.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{provider}/{execution_id}",
    tag = "webhooks",
    operation_id = "receive_callback",
    security(()),
    params(
        ("provider" = String, Path, description = "Provider name", example = "replicate"),
        ("execution_id" = String, Path, description = "The execution the callback is for"),
        CallbackStep,
        ("webhook-id" = Option<String>, Header, description = "Standard Webhooks message id (Replicate)"),
        ("webhook-timestamp" = Option<String>, Header, description = "Standard Webhooks Unix timestamp (Replicate)"),
        ("webhook-signature" = Option<String>, Header, description = "Standard Webhooks `v1,<base64 HMAC-SHA256>` list (Replicate)"),
        ("X-Fal-Webhook-Request-Id" = Option<String>, Header, description = "fal request id"),
        ("X-Fal-Webhook-User-Id" = Option<String>, Header, description = "fal user id"),
        ("X-Fal-Webhook-Timestamp" = Option<String>, Header, description = "fal Unix timestamp"),
        ("X-Fal-Webhook-Signature" = Option<String>, Header, description = "fal hex ED25519 signature"),
    ),
    request_body(content = Object, description = "The provider's callback body, as the provider sends it", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (or a duplicate)", body = CallbackReceipt),
        (status = 400, description = "The path cannot be decoded, or the body is not a callback the provider sends", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Signature missing, invalid or too old", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such execution or provider", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than the API accepts", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Backend unavailable; the provider retries", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn receive(
    State(state): State<Arc<ApiState>>,
    Path((provider, execution_id)): Path<(String, String)>,
    Query(at): Query<CallbackStep>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CallbackReceipt>, Problem> {
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
        .receive_callback(
            &provider,
            &execution_id,
            at.step.unwrap_or(0),
            &pairs,
            &body,
        )
        .await?;
    Ok(Json(CallbackReceipt {
        received: true,
        duplicate: !new,
    }))
}
