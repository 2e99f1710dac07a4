//! API Gateway HTTP API (payload v2) events through the shared axum router: the same routes,
//! errors and contract as `executor dev`, within the payload limits AWS enforces around them
//! (each from AWS's documentation, constants in `executor_lifecycle::limits`):
//!
//! - API Gateway HTTP API: a request payload over 10 MB never reaches the function; API Gateway
//!   answers `413 {"message":"Request Entity Too Large"}` (http-api-quotas.html, "Payload
//!   size 10 MB").
//! - Lambda, synchronous invocation: the event (the request as JSON, a binary body base64
//!   encoded) and the response are 6 MB each at most (Lambda quotas; Invoke API reference). A
//!   larger event is refused before the function runs (`RequestEntityTooLargeException`),
//!   which the caller sees as a `413` here too; a larger response fails the invocation
//!   (`Function.ResponseSizeTooLarge`) and API Gateway answers 500. [`serve`] therefore fails
//!   (an error, not a response) when the response would not fit, so a test that makes such a
//!   response fails as the deployment would.
//!
//! The app never makes one: a success whose body would not fit is stored in the blob store
//! under `responses/{sha256}` (write-once, expired by the bucket's lifecycle rule after a day)
//! and answered `303 See Other` to a presigned URL valid 15 minutes (the route that can answer
//! that much is `GET /v1/executions/{id}/raw` of a multi-image OpenAI generation, whose raw
//! answer holds the images in `b64_json`). Media itself is a `307` to S3 already
//! (`GET /v1/media/...`).

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::Router;
use base64::Engine as _;
use executor_lifecycle::BlobStore;
use executor_lifecycle::limits::{
    API_GATEWAY_PAYLOAD_MAX_BYTES, LAMBDA_REQUEST_MAX_BYTES, LAMBDA_RESPONSE_MAX_BYTES,
};
use http::HeaderMap;
use lambda_http::request::LambdaRequest;
use serde_json::Value;
use sha2::Digest as _;
use tower::ServiceExt;

/// How long the presigned URL of a spilled response stays valid.
pub const SPILLED_RESPONSE_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The most of a response the adapter buffers (to answer it, or to store it and redirect).
const RESPONSE_BUFFER_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Where spilled responses live in the blob store.
pub const SPILL_PREFIX: &str = "responses/";

/// The answer API Gateway (or Lambda in front of the function) gives a request too large.
fn too_large() -> ApiGatewayV2httpResponse {
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = 413;
    out.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    out.body = Some(LambdaBody::Text(
        r#"{"message":"Request Entity Too Large"}"#.into(),
    ));
    out.is_base64_encoded = false;
    out
}

/// The size of `resp` as the Lambda runtime sends it (its JSON).
pub fn response_size(resp: &ApiGatewayV2httpResponse) -> anyhow::Result<usize> {
    Ok(serde_json::to_vec(resp)?.len())
}

/// Fails as Lambda does when `size` bytes of response would not fit its payload limit.
pub fn check_response_size(size: usize) -> anyhow::Result<()> {
    if size > LAMBDA_RESPONSE_MAX_BYTES {
        anyhow::bail!(
            "Function.ResponseSizeTooLarge: response payload size ({size} bytes) exceeded the maximum allowed payload size ({LAMBDA_RESPONSE_MAX_BYTES} bytes)"
        );
    }
    Ok(())
}

fn lambda_response(parts: &http::response::Parts, bytes: &[u8]) -> ApiGatewayV2httpResponse {
    let textual = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.contains("json") || ct.starts_with("text/"));
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = parts.headers.clone();
    out.multi_value_headers = HeaderMap::new();
    if textual {
        out.body = Some(LambdaBody::Text(String::from_utf8_lossy(bytes).to_string()));
        out.is_base64_encoded = false;
    } else {
        out.body = Some(LambdaBody::Text(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        ));
        out.is_base64_encoded = true;
    }
    out
}

/// Serves one API Gateway event with `router`, within the payload limits (module docs). A
/// success too large for Lambda's response is stored in `spill` and answered with a `303` to a
/// presigned URL; without a store that presigns (or for a non-success), it is an error.
pub async fn serve(
    router: Router,
    event: Value,
    spill: Option<&dyn BlobStore>,
) -> anyhow::Result<ApiGatewayV2httpResponse> {
    let event_size = serde_json::to_vec(&event)?.len();
    let req: LambdaRequest = serde_json::from_value(event)?;
    let req: http::Request<lambda_http::Body> = req.into();
    let (parts, body) = req.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Empty => Vec::new(),
        lambda_http::Body::Text(t) => t.into_bytes(),
        lambda_http::Body::Binary(b) => b,
        _ => Vec::new(),
    };
    if bytes.len() > API_GATEWAY_PAYLOAD_MAX_BYTES || event_size > LAMBDA_REQUEST_MAX_BYTES {
        // API Gateway refuses the first, Lambda the second, before any code runs.
        return Ok(too_large());
    }
    let req = http::Request::from_parts(parts, axum::body::Body::from(bytes));
    let resp = router.oneshot(req).await?;
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, RESPONSE_BUFFER_MAX_BYTES).await?;
    let out = lambda_response(&parts, &bytes);
    let size = response_size(&out)?;
    if size <= LAMBDA_RESPONSE_MAX_BYTES {
        return Ok(out);
    }
    match spill {
        Some(store) if parts.status.is_success() => {
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_string();
            let key = format!(
                "{SPILL_PREFIX}{}",
                hex::encode(sha2::Sha256::digest(&bytes))
            );
            store
                .put_once(&key, bytes.to_vec())
                .await
                .map_err(|e| anyhow::anyhow!("storing a {size}-byte response: {e}"))?;
            let Some(url) = store
                .presigned_get(&key, &content_type, SPILLED_RESPONSE_TTL)
                .await
                .map_err(|e| anyhow::anyhow!("presigning a stored response: {e}"))?
            else {
                return check_response_size(size).map(|()| out);
            };
            tracing::info!(
                bytes = bytes.len(),
                key,
                "response too large for Lambda: stored and redirected"
            );
            let mut redirect = ApiGatewayV2httpResponse::default();
            redirect.status_code = 303;
            redirect
                .headers
                .insert(http::header::LOCATION, http::HeaderValue::from_str(&url)?);
            redirect.headers.insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("private, no-store"),
            );
            redirect.body = Some(LambdaBody::Empty);
            Ok(redirect)
        }
        _ => check_response_size(size).map(|()| out),
    }
}
