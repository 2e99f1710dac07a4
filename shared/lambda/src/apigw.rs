//! API Gateway HTTP API (payload v2) events through the shared axum router: the same routes,
//! errors and contract as `executor dev`.

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::Router;
use base64::Engine as _;
use http::HeaderMap;
use lambda_http::request::LambdaRequest;
use serde_json::Value;
use tower::ServiceExt;

/// Serves one API Gateway event with `router`.
pub async fn serve(router: Router, event: Value) -> anyhow::Result<ApiGatewayV2httpResponse> {
    let req: LambdaRequest = serde_json::from_value(event)?;
    let req: http::Request<lambda_http::Body> = req.into();
    let (parts, body) = req.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Empty => Vec::new(),
        lambda_http::Body::Text(t) => t.into_bytes(),
        lambda_http::Body::Binary(b) => b,
        _ => Vec::new(),
    };
    let req = http::Request::from_parts(parts, axum::body::Body::from(bytes));
    let resp = router.oneshot(req).await?;
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024).await?;
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
        out.body = Some(LambdaBody::Text(
            String::from_utf8_lossy(&bytes).to_string(),
        ));
        out.is_base64_encoded = false;
    } else {
        out.body = Some(LambdaBody::Text(
            base64::engine::general_purpose::STANDARD.encode(&bytes),
        ));
        out.is_base64_encoded = true;
    }
    Ok(out)
}
