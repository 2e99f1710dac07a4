//! Errors as RFC 9457 problem details (`application/problem+json`): type, title, status,
//! detail, plus the failing field as a JSON pointer and the error class where one applies.
//! Every 4xx/5xx of the API goes through [`Problem`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use executor_lifecycle::{EngineError, Failure};
use serde::Serialize;

/// A problem response.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong here.
    pub detail: String,
    /// The failing field, as a JSON pointer into the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The error class of the failure taxonomy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem of a status, type slug and detail.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("https://executor.dev/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            error_class: None,
            retry_after: None,
        }
    }

    /// A 400 validation problem naming the field.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Problem {
        let mut p = Problem::new(StatusCode::BAD_REQUEST, "validation-error", detail);
        p.field = Some(field.to_string());
        p.error_class = Some("validation_error".into());
        p
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 404 for an execution (also for another tenant's).
    pub fn execution_not_found() -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "no such execution")
    }

    /// Sets `Retry-After`.
    pub fn with_retry_after(mut self, seconds: u64) -> Problem {
        self.retry_after = Some(seconds);
        self
    }

    /// From a validation failure.
    pub fn from_failure(f: &Failure) -> Problem {
        let mut p = Problem::invalid(f.field.as_deref().unwrap_or("/"), f.message.clone());
        p.error_class = Some(f.class.as_str().to_string());
        p
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Problem {
        match e {
            EngineError::Invalid(f) => Problem::from_failure(&f),
            EngineError::NotFound => Problem::execution_not_found(),
            EngineError::IdempotencyConflict => {
                let mut p = Problem::new(
                    StatusCode::CONFLICT,
                    "idempotency-key-reused",
                    "this Idempotency-Key was used with a different request body",
                );
                p.field = Some("/headers/idempotency-key".into());
                p
            }
            EngineError::Unauthorized(f) => {
                let mut p = Problem::unauthorized(format!("callback rejected: {}", f.message));
                p.error_class = Some(f.class.as_str().to_string());
                p
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the service could not complete the request; retry with the same Idempotency-Key",
                )
                .with_retry_after(1)
            }
        }
    }
}

/// Fallback for unknown routes.
pub async fn not_found_route(uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no route for {}", uri.path()),
    )
}

/// Fallback for a known route with the wrong method.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
