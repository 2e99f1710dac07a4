//! Uploaded files (`/v1/files`): media sent once and named in inputs by id. Multipart uploads
//! through the API, or a presigned upload (JSON create, then one `PUT` of the bytes straight
//! to the store: S3 on AWS, so large files never pass through Lambda); typed by their bytes,
//! size-checked, tenant-scoped, expiring. The lifecycle side is `executor_lifecycle::files`.

use crate::ApiState;
use crate::auth::authorize;
use crate::problem::Problem;
use crate::view::rfc3339;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use executor_lifecycle::files::{FileContent, FileRecord, FileStatus, UploadKind};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Where and how to send the bytes of a presigned upload.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadTarget {
    /// Always `PUT`.
    #[schema(value_type = String, example = "PUT")]
    pub method: &'static str,
    /// The URL (S3's presigned PUT on AWS, this API's upload route embedded); valid one hour.
    pub url: String,
    /// Headers the `PUT` must carry, with these values (they are signed on S3).
    pub headers: std::collections::BTreeMap<String, String>,
}

/// A file.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileView {
    /// `file_` + ULID: name it in an input where the model takes a media URL.
    pub id: String,
    /// Always `file`.
    #[schema(value_type = String, example = "file")]
    pub object: &'static str,
    /// The name it was uploaded with (without directories).
    pub filename: String,
    /// Its type, as its bytes are (declared types must agree).
    pub content_type: String,
    /// Its size.
    pub size_bytes: u64,
    /// `ready` (usable), or `pending` (a presigned upload whose bytes have not arrived).
    pub status: FileStatus,
    /// How its bytes arrived (`direct`) or arrive (`presigned`).
    pub upload_kind: UploadKind,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Expires (RFC 3339): then it is deleted, and inputs naming it are refused.
    pub expires_at: String,
    /// The content URL providers fetch it from: also usable as a media input as it is.
    /// Whoever has it can read the file until it expires or is deleted.
    pub url: String,
    /// A presigned upload's target (in the create's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadTarget>,
    /// Why uploaded bytes were refused (and removed): send them again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

fn view(f: &FileRecord, status: FileStatus, url: String) -> FileView {
    FileView {
        id: f.id.clone(),
        object: "file",
        filename: f.filename.clone(),
        content_type: f.content_type.clone(),
        size_bytes: f.size_bytes,
        status,
        upload_kind: f.upload,
        created_at: rfc3339(f.created_at_ms),
        expires_at: rfc3339(f.expires_at_ms),
        url,
        upload: None,
        problem: None,
    }
}

/// The JSON create of a presigned upload.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"filename": "clip.mp4", "content_type": "video/mp4", "size_bytes": 48_000_000}))]
pub struct UploadRequest {
    /// The file's name.
    pub filename: String,
    /// Its type: image, audio, video, PDF, text or JSON (checked against the bytes).
    pub content_type: String,
    /// Its exact size; the `PUT` must send this many bytes.
    pub size_bytes: u64,
    /// Lifetime (default 86400, at most 604800).
    #[serde(default)]
    pub expires_in_seconds: Option<u64>,
}

/// The multipart form of a direct upload (for the document).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file (its part's `filename` and `Content-Type` are used).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Lifetime in seconds (default 86400, at most 604800).
    expires_in_seconds: Option<u64>,
}

fn too_large(limit: u64, what: &str) -> Problem {
    let mut p = Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        format!("{what} is larger than {limit} bytes"),
    );
    p.field = Some("/file".into());
    p
}

fn created(v: FileView) -> Response {
    let location = format!("/v1/files/{}", v.id);
    let mut resp = (StatusCode::CREATED, Json(v)).into_response();
    if let Ok(l) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, l);
    }
    resp
}

/// Uploads a file.
///
/// `multipart/form-data` with a `file` part (and optionally `expires_in_seconds`): the file is
/// stored and `ready` at once (at most `api.max_upload_bytes`; on AWS about 4 MB, Lambda's
/// payload limit). `application/json` (`filename`, `content_type`, `size_bytes`): a presigned
/// upload, answered with `upload` (a `PUT` of exactly those bytes; on AWS straight to S3) and
/// `status: pending` until the bytes arrive. Either way the bytes must be what the type says.
#[utoipa::path(
    post,
    path = "/v1/files",
    tag = "files",
    operation_id = "upload_file",
    request_body(content(
        (UploadForm = "multipart/form-data"),
        (UploadRequest = "application/json"),
    )),
    responses(
        (status = 201, description = "Stored (multipart), or ready to receive its bytes (JSON)", body = FileView,
            headers(("Location" = String, description = "The file's URL"))),
        (status = 400, description = "No file part, an unknown part or field, bytes that are not the declared type, a bad expiry", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the API takes (multipart) or than a file may be (presigned)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither multipart/form-data nor application/json", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn upload(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "multipart/form-data" => direct(&state, &tenant, &ct, body).await,
        "application/json" => presigned(&state, &tenant, body).await,
        _ => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the file as multipart/form-data (a `file` part), or JSON {filename, content_type, size_bytes} for a presigned upload",
        )),
    }
}

async fn direct(state: &ApiState, tenant: &str, ct: &str, body: Body) -> Result<Response, Problem> {
    let limit = state.config.max_upload_bytes as u64;
    let boundary = multer::parse_boundary(ct).map_err(|e| {
        Problem::invalid(
            "/headers/content-type",
            format!("multipart without a boundary: {e}"),
        )
    })?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .per_field(limit)
            .whole_stream(limit.saturating_add(64 * 1024)),
    );
    let mut form =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut file: Option<(String, Option<String>, Vec<u8>)> = None;
    let mut expires: Option<u64> = None;
    let bad = |e: multer::Error| match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            too_large(limit, "the file")
        }
        other => Problem::invalid("/file", format!("unreadable multipart body: {other}")),
    };
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" => {
                if file.is_some() {
                    return Err(Problem::invalid("/file", "one `file` part per upload"));
                }
                let filename = field.file_name().unwrap_or("file").to_string();
                let ctype = field.content_type().map(|m| m.to_string());
                let bytes = field.bytes().await.map_err(bad)?;
                file = Some((filename, ctype, bytes.to_vec()));
            }
            "expires_in_seconds" => {
                let text = field.text().await.map_err(bad)?;
                expires = Some(text.trim().parse().map_err(|_| {
                    Problem::invalid(
                        "/expires_in_seconds",
                        format!(
                            "expires_in_seconds must be a whole number of seconds, got {text:?}"
                        ),
                    )
                })?);
            }
            other => {
                return Err(Problem::invalid(
                    &format!("/{other}"),
                    format!(
                        "unknown part {other:?}; the form takes `file` and `expires_in_seconds`"
                    ),
                ));
            }
        }
    }
    let Some((filename, ctype, bytes)) = file else {
        return Err(Problem::invalid("/file", "no `file` part in the form"));
    };
    let (record, url) = state
        .engine
        .create_file(tenant, &filename, ctype.as_deref(), bytes, expires)
        .await?;
    Ok(created(view(&record, FileStatus::Ready, url)))
}

async fn presigned(state: &ApiState, tenant: &str, body: Body) -> Result<Response, Problem> {
    let bytes = axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| too_large(state.config.max_body_bytes as u64, "the body"))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let req: UploadRequest = crate::executions::parse_body(&headers, &bytes)?;
    if req.size_bytes > state.config.max_file_bytes {
        let mut p = too_large(state.config.max_file_bytes, "a file");
        p.field = Some("/size_bytes".into());
        return Err(p);
    }
    let (record, url, put) = state
        .engine
        .start_upload(
            tenant,
            &req.filename,
            &req.content_type,
            req.size_bytes,
            req.expires_in_seconds,
        )
        .await?;
    let mut v = view(&record, FileStatus::Pending, url);
    let put_url = put.unwrap_or_else(|| {
        format!(
            "{}/v1/files/{}/content?token={}",
            state.engine.config().public_base_url.trim_end_matches('/'),
            record.id,
            record.token
        )
    });
    v.upload = Some(UploadTarget {
        method: "PUT",
        url: put_url,
        headers: [
            ("Content-Type".to_string(), record.content_type.clone()),
            ("Content-Length".to_string(), record.size_bytes.to_string()),
        ]
        .into(),
    });
    Ok(created(v))
}

/// A file.
///
/// Its status (`pending` until a presigned upload's bytes arrived and were checked) and its
/// content URL. Other tenants' and expired files are 404.
#[utoipa::path(
    get,
    path = "/v1/files/{id}",
    tag = "files",
    operation_id = "get_file",
    params(("id" = String, Path, description = "File id")),
    responses(
        (status = 200, description = "The file", body = FileView),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such file (or another tenant's, or expired)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn get_one(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<FileView>, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let (record, status, url, problem) =
        state.engine.file(&tenant, &id).await.map_err(not_found)?;
    let mut v = view(&record, status, url);
    v.problem = problem;
    Ok(Json(v))
}

fn not_found(e: executor_lifecycle::EngineError) -> Problem {
    match e {
        executor_lifecycle::EngineError::NotFound => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "no such file")
        }
        other => other.into(),
    }
}

/// Deletes a file.
///
/// Its bytes and record are removed; its content URL answers 404 from now on, and inputs
/// naming it are refused. Executions that already took its URL keep it (the provider may
/// have fetched it).
#[utoipa::path(
    delete,
    path = "/v1/files/{id}",
    tag = "files",
    operation_id = "delete_file",
    params(("id" = String, Path, description = "File id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such file (or another tenant's, or expired)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn delete(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let tenant = authorize(&state, &headers).await?;
    state
        .engine
        .delete_file(&tenant, &id)
        .await
        .map_err(not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The capability of a content URL.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The file's token (in its `url`).
    pub token: String,
}

/// A file's bytes (its content URL).
///
/// No API key: the token in the URL is the capability, so providers can fetch it. Embedded,
/// the bytes; on S3, a redirect to a presigned GET (15 minutes).
#[utoipa::path(
    get,
    path = "/v1/files/{id}/content",
    tag = "files",
    operation_id = "get_file_content",
    security(()),
    params(("id" = String, Path, description = "File id"), TokenQuery),
    responses(
        (status = 200, description = "The bytes, typed", content((Vec<u8> = "application/octet-stream"))),
        (status = 307, description = "On S3: a redirect to a presigned URL of the bytes",
            headers(("Location" = String, description = "The presigned URL (15 minutes)"))),
        (status = 400, description = "No token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such file, a wrong token, or expired", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn content(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<Response, Problem> {
    let (record, content) = state
        .engine
        .file_content(&id, &q.token)
        .await
        .map_err(not_found)?;
    Ok(match content {
        FileContent::Redirect(url) => (
            StatusCode::TEMPORARY_REDIRECT,
            [
                (header::LOCATION, url),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
        )
            .into_response(),
        FileContent::Bytes(bytes) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, record.content_type),
                (header::CACHE_CONTROL, "private, max-age=300".to_string()),
            ],
            bytes,
        )
            .into_response(),
    })
}

/// Sends the bytes of a presigned upload to this API.
///
/// The upload target of stores without a presigned PUT (embedded); at most
/// `api.max_upload_bytes`. The body must be exactly the declared size and type.
#[utoipa::path(
    put,
    path = "/v1/files/{id}/content",
    tag = "files",
    operation_id = "put_file_content",
    security(()),
    params(("id" = String, Path, description = "File id"), TokenQuery),
    request_body(content((Vec<u8> = "application/octet-stream"))),
    responses(
        (status = 200, description = "Stored: the file is ready", body = FileView),
        (status = 400, description = "Not the declared size or type", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such file, a wrong token, or expired", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The bytes were sent already", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the API takes", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn put_content(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
    body: Body,
) -> Result<Json<FileView>, Problem> {
    let limit = state.config.max_upload_bytes;
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Problem::invalid("/body", format!("unreadable body: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large(limit as u64, "the body"));
        }
        bytes.extend_from_slice(&chunk);
    }
    let record = state
        .engine
        .put_upload(&id, &q.token, bytes)
        .await
        .map_err(not_found)?;
    let url = format!(
        "{}/v1/files/{}/content?token={}",
        state.engine.config().public_base_url.trim_end_matches('/'),
        record.id,
        record.token
    );
    Ok(Json(view(&record, FileStatus::Ready, url)))
}
