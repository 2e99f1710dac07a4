//! The public JSON shape of an execution: status, normalized outputs, error with class and
//! provider detail, cost, timestamps. Built from the guard and the result blob.

use executor_lifecycle::{Cost, Failure, Guard, Output, ResultRecord, Wait};
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};

/// RFC 3339 (UTC, milliseconds) of a ms timestamp.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// An error as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorView {
    /// Error class.
    pub class: String,
    /// What the customer should read.
    pub message: String,
    /// Provider / system detail.
    pub detail: String,
    /// Provider's own code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
    /// Provider HTTP status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Failing input field (JSON pointer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Would a retry of the same request likely succeed?
    pub retryable: bool,
    /// customer, provider or platform.
    pub fault: String,
}

impl From<&Failure> for ErrorView {
    fn from(f: &Failure) -> Self {
        ErrorView {
            class: f.class.as_str().to_string(),
            message: f.class.customer_message().to_string(),
            detail: f.message.clone(),
            provider_code: f.provider_code.clone(),
            http_status: f.http_status,
            field: f.field.clone(),
            retryable: f.class.is_retryable(),
            fault: serde_json::to_value(f.class.fault())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        }
    }
}

/// Links to the operations on an execution.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExecutionUrls {
    /// `GET` this execution.
    #[serde(rename = "self")]
    pub self_: String,
    /// `POST` to cancel it.
    pub cancel: String,
    /// `GET` its timeline.
    pub events: String,
    /// `GET` the provider's raw final response (once terminal).
    pub raw: String,
}

/// An execution as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExecutionView {
    /// Id.
    pub id: String,
    /// Always `execution`.
    #[schema(value_type = String, example = "execution")]
    pub object: &'static str,
    /// Model.
    pub model: String,
    /// Provider.
    pub provider: String,
    /// Shape: `immediate`, `polling` or `callback`.
    pub shape: String,
    /// Status (see docs/transitions.md).
    #[schema(value_type = executor_lifecycle::Status)]
    pub status: String,
    /// The terminal status reached (`succeeded`, `failed`, `canceled`, `timed_out`), once
    /// there is one; it stays after finalization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// True once the provider work is over.
    pub terminal: bool,
    /// Committed version.
    pub version: u64,
    /// Acceptance time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Terminal time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Normalized outputs (absent in list items: read the execution for them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<Output>>,
    /// Usage figures the cost was computed from.
    #[serde(skip_serializing_if = "Value::is_null")]
    #[schema(required = false)]
    pub usage: Value,
    /// The error, if failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
    /// Outcome delivery error, if degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_error: Option<ErrorView>,
    /// Cost, once finalized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// The provider's job id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_job_id: Option<String>,
    /// The provider's own status string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    /// Progress 0..1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// What it waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Wait>,
    /// Submit attempts.
    pub attempts: u32,
    /// Cancel requested.
    pub cancel_requested: bool,
    /// Ids of the provider callbacks received (verified and stored), in arrival order; which
    /// step consumed each is in the timeline (`callbacks_consumed`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub callbacks_received: Vec<String>,
    /// Callbacks the webhook route refused (the first 10): when and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub callbacks_rejected: Vec<RejectedCallbackView>,
    /// Related URLs.
    pub urls: ExecutionUrls,
    /// The execution this one reruns (`POST /v1/executions/{id}/rerun`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    /// The executions that rerun this one, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reruns: Vec<String>,
    /// The batch this execution is an item of (`POST /v1/batches`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Its index in that batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_index: Option<u32>,
}

/// A refused callback.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RejectedCallbackView {
    /// RFC 3339 time it arrived.
    pub at: String,
    /// Why it was refused (error class and message).
    pub reason: String,
}

impl ExecutionView {
    /// Builds the view from a guard and its result blob.
    pub fn new(g: &Guard, result: Option<&ResultRecord>) -> ExecutionView {
        let provider_result = result.and_then(|r| r.result.as_ref());
        ExecutionView {
            id: g.id.clone(),
            object: "execution",
            model: g.model.clone(),
            provider: g.provider.clone(),
            shape: g.shape.as_str().to_string(),
            status: g.status().as_str().to_string(),
            outcome: g.hot.outcome.map(|s| s.as_str().to_string()),
            terminal: g.status().is_terminal(),
            version: g.version(),
            created_at: rfc3339(g.created_at_ms),
            updated_at: rfc3339(g.updated_at_ms),
            completed_at: g.hot.terminal_at_ms.map(rfc3339),
            outputs: Some(
                provider_result
                    .map(|r| r.outputs.clone())
                    .unwrap_or_default(),
            ),
            usage: provider_result
                .map(|r| r.usage.clone())
                .unwrap_or(Value::Null),
            error: g.hot.error.as_ref().map(ErrorView::from),
            delivery_error: g.hot.delivery_error.as_ref().map(ErrorView::from),
            cost: g.hot.cost.clone(),
            provider_job_id: g.hot.job_id.clone(),
            provider_status: g.hot.provider_status.clone(),
            progress: g.hot.progress,
            waiting: g.hot.waiting.clone(),
            attempts: g.hot.attempt,
            cancel_requested: g.cancel_requested,
            callbacks_received: g.callbacks_received.clone(),
            callbacks_rejected: g
                .callbacks_rejected
                .iter()
                .map(|r| RejectedCallbackView {
                    at: rfc3339(r.at_ms),
                    reason: r.reason.clone(),
                })
                .collect(),
            urls: ExecutionUrls {
                self_: format!("/v1/executions/{}", g.id),
                cancel: format!("/v1/executions/{}/cancel", g.id),
                events: format!("/v1/executions/{}/events", g.id),
                raw: format!("/v1/executions/{}/raw", g.id),
            },
            rerun_of: g.rerun_of.clone(),
            reruns: g.reruns.clone(),
            batch_id: g.batch.as_ref().map(|b| b.id.clone()),
            batch_index: g.batch.as_ref().map(|b| b.index),
        }
    }

    /// The view of a list item: the guard alone, no outputs or usage (no blob read).
    pub fn summary(g: &Guard) -> ExecutionView {
        let mut v = ExecutionView::new(g, None);
        v.outputs = None;
        v
    }
}

/// The provider's raw final response of an execution, as the adapter received it (large
/// inline media replaced by a marker: the outputs carry it).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RawResponse {
    /// `raw_response`.
    pub object: &'static str,
    /// The execution.
    pub execution_id: String,
    /// Its terminal status.
    pub status: String,
    /// The raw response (JSON; null when the provider sent none, e.g. refused at submit).
    #[schema(value_type = Object)]
    pub raw: Value,
}
