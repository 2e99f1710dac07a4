//! Small helpers shared by the provider modules: JSON responses with extra headers, reading
//! the `Authorization` header and parsing request bodies.

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// A JSON response with `headers` added (invalid header values are skipped).
pub fn json(status: StatusCode, headers: &[(&'static str, String)], body: &Value) -> Response {
    let mut resp = (status, Json(body)).into_response();
    add_headers(&mut resp, headers);
    resp
}

/// Adds `headers` to `resp`, replacing existing ones of the same name.
pub fn add_headers(resp: &mut Response, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
}

/// The credential after `Authorization: <scheme> ` for one of `schemes` (case-insensitive).
pub fn credential(headers: &HeaderMap, schemes: &[&str]) -> Option<String> {
    let raw = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = raw.split_once(' ')?;
    let token = token.trim();
    (schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) && !token.is_empty())
        .then(|| token.to_owned())
}

/// What the credential check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// A credential was given.
    Ok,
    /// No usable credential.
    Missing,
    /// A credential starting with `invalid` (the simulator's way to test bad keys).
    Invalid,
}

/// Checks the `Authorization` header.
pub fn check_auth(headers: &HeaderMap, schemes: &[&str]) -> Auth {
    match credential(headers, schemes) {
        None => Auth::Missing,
        Some(t) if t.starts_with("invalid") => Auth::Invalid,
        Some(_) => Auth::Ok,
    }
}

/// A header value as text.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Parses a JSON body; an empty body is `{}`.
pub fn parse_body(body: &[u8]) -> Result<Value, serde_json::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(body)
}
