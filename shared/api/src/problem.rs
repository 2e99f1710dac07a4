//! Errors as RFC 9457 problem details (`application/problem+json`): type, title, status,
//! detail, plus the failing field as a JSON pointer and the error class where one applies.
//! Every 4xx/5xx of the API goes through [`Problem`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use executor_lifecycle::{EngineError, Failure};
use serde::Serialize;

/// A problem response (RFC 9457).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "https://executor.dev/problems/validation-error",
    "title": "Bad Request",
    "status": 400,
    "detail": "input.prompt: \"prompt\" is a required property",
    "field": "/input/prompt",
    "error_class": "validation_error"
}))]
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
    /// The budget a create did not fit (`402`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::usage::BudgetView>,
    /// The estimated cost that did not fit the budget (`402`), in USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate_usd: Option<f64>,
    #[serde(skip)]
    #[schema(ignore)]
    retry_after: Option<u64>,
    #[serde(skip)]
    #[schema(ignore)]
    allow: Option<HeaderValue>,
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
            budget: None,
            estimate_usd: None,
            retry_after: None,
            allow: None,
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

    /// 429: the tenant's request rate is over its limit.
    pub fn rate_limited(retry_after_seconds: u64) -> Problem {
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("too many requests; retry after {retry_after_seconds} s"),
        )
        .with_retry_after(retry_after_seconds)
    }

    /// A 400 about a query parameter.
    pub fn bad_query(name: &str, detail: impl Into<String>) -> Problem {
        let mut p = Problem::new(StatusCode::BAD_REQUEST, "invalid-query", detail);
        p.field = Some(format!("/query/{name}"));
        p.error_class = Some("validation_error".into());
        p
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
        if let Some(allow) = self.allow {
            resp.headers_mut().insert(header::ALLOW, allow);
        }
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
            EngineError::Conflict(detail) => Problem::new(StatusCode::CONFLICT, "conflict", detail),
            EngineError::BudgetExceeded(refusal) => {
                let mut p = Problem::new(
                    StatusCode::PAYMENT_REQUIRED,
                    "budget-exceeded",
                    refusal.to_string(),
                );
                p.error_class = Some("budget_exceeded".into());
                p.estimate_usd = Some(crate::usage::usd(refusal.estimate_usd_micros));
                p.budget = Some(crate::usage::BudgetView::from(&refusal.state));
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

/// The problem type slug of a status the framework answers on its own.
fn slug_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad-request",
        401 => "unauthorized",
        402 => "budget-exceeded",
        404 => "not-found",
        405 => "method-not-allowed",
        406 => "not-acceptable",
        408 => "request-timeout",
        413 => "payload-too-large",
        415 => "unsupported-media-type",
        422 => "unprocessable-content",
        429 => "rate-limited",
        s if s >= 500 => "internal-error",
        _ => "http-error",
    }
}

/// Response middleware: every 4xx/5xx that is not already problem details (the framework's
/// own rejections: wrong method, body too large, a path it cannot decode) is rewritten as
/// `application/problem+json`, keeping `Allow` and `Retry-After`.
pub async fn as_problem(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let detail = match (status.as_u16(), text.is_empty()) {
        (405, _) => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("method not allowed here; allowed: {allow}")
        }
        (413, _) => "the request body is larger than the API accepts".to_string(),
        (_, false) => text,
        (_, true) => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let mut p = Problem::new(status, slug_of(status), detail);
    p.allow = parts.headers.get(header::ALLOW).cloned();
    p.retry_after = parts
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    p.into_response()
}
