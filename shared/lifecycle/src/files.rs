//! Uploaded files: media a client sends once and names in inputs by id, instead of a URL or a
//! `data:` URI inside the request body.
//!
//! A file is two blobs: `files/{id}/meta` (its [`FileRecord`], written once, last for a direct
//! upload, first for a presigned one) and `files/{id}/content` (the bytes). It belongs to a
//! tenant (other tenants get 404), is typed by its bytes on arrival (the declared type must
//! agree with what the bytes are), is size-checked, and expires. Inputs name it by id
//! (`file_...`); at create the id is replaced by the file's content URL, a capability URL with a
//! random token that providers fetch (`GET /v1/files/{id}/content?token=`: the bytes, or on S3 a
//! redirect to a presigned GET), so no provider needs our credentials.

use crate::engine::{Engine, EngineError};
use crate::ports::{PutOutcome, StoreError};
use crate::taxonomy::Failure;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// Default lifetime of a file.
pub const DEFAULT_EXPIRES_IN_SECONDS: u64 = 24 * 3600;
/// Longest lifetime of a file (S3 deletes `files/` objects a day after it: template.yaml).
pub const MAX_EXPIRES_IN_SECONDS: u64 = 7 * 24 * 3600;
/// Bytes read to type a file.
const SNIFF_BYTES: usize = 8192;

/// How a file's bytes arrive.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadKind {
    /// In the `POST /v1/files` request (multipart).
    Direct,
    /// By a `PUT` of the client to the upload URL the create answered.
    Presigned,
}

/// A file's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// `file_` + ULID.
    pub id: String,
    /// Owner.
    pub tenant: String,
    /// The client's name for it.
    pub filename: String,
    /// Its type (the bytes' own, for media).
    pub content_type: String,
    /// Its size.
    pub size_bytes: u64,
    /// Created (ms).
    pub created_at_ms: i64,
    /// Expires (ms): afterwards it is gone (404) and inputs naming it are refused.
    pub expires_at_ms: i64,
    /// How the bytes arrive.
    pub upload: UploadKind,
    /// The capability in its content URL (random, 128 bits).
    pub token: String,
}

/// The state of a file.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// The upload URL has not received the bytes yet.
    Pending,
    /// Usable as an input.
    Ready,
}

/// A file's bytes: served here, or at a presigned URL of the store.
#[derive(Debug)]
pub enum FileContent {
    /// The bytes (embedded).
    Bytes(Vec<u8>),
    /// A redirect (S3).
    Redirect(String),
}

fn meta_key(id: &str) -> String {
    format!("files/{id}/meta")
}

fn content_key(id: &str) -> String {
    format!("files/{id}/content")
}

/// Whether `s` has the shape of a file id.
pub fn is_file_id(s: &str) -> bool {
    s.strip_prefix("file_")
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn new_file_id() -> String {
    format!("file_{}", ulid::Ulid::new().to_string().to_lowercase())
}

fn new_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn invalid(field: &str, message: impl Into<String>) -> EngineError {
    EngineError::Invalid(Failure::validation(field, message))
}

/// Types a file by its first bytes: the type it is stored under, or why it is refused. Media
/// (image, audio, video, PDF) must be what the bytes are; text and JSON must not be a binary
/// format; nothing else is taken.
pub fn check_type(declared: Option<&str>, head: &[u8]) -> Result<String, String> {
    let sniffed = infer::get(head).map(|t| t.mime_type().to_string());
    let declared = declared
        .map(|d| {
            d.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|d| !d.is_empty() && d != "application/octet-stream");
    let top = |m: &str| m.split('/').next().unwrap_or("").to_string();
    let media =
        |m: &str| matches!(top(m).as_str(), "image" | "audio" | "video") || m == "application/pdf";
    match (declared.as_deref(), sniffed.as_deref()) {
        (Some(d), Some(s)) if media(d) => {
            if top(d) == top(s) && (d != "application/pdf" || s == d) {
                Ok(s.to_string())
            } else {
                Err(format!("declared {d}, but the bytes are {s}"))
            }
        }
        (Some(d), None) if media(d) => Err(format!(
            "declared {d}, but the bytes are not a known {} format",
            top(d)
        )),
        (Some(d @ ("text/plain" | "application/json" | "text/csv")), None) => Ok(d.to_string()),
        (Some(d @ ("text/plain" | "application/json" | "text/csv")), Some(s)) => {
            Err(format!("declared {d}, but the bytes are {s}"))
        }
        (Some(d), _) => Err(format!(
            "type {d} is not taken: upload images, audio, video, PDF, text or JSON"
        )),
        (None, Some(s)) if media(s) => Ok(s.to_string()),
        (None, Some(s)) => Err(format!(
            "the bytes are {s}: upload images, audio, video, PDF, text or JSON"
        )),
        (None, None) => Err(
            "the type is not given and the bytes are not a known media format: send a Content-Type"
                .into(),
        ),
    }
}

impl Engine {
    fn file_url(&self, f: &FileRecord) -> String {
        format!(
            "{}/v1/files/{}/content?token={}",
            self.config.public_base_url.trim_end_matches('/'),
            f.id,
            f.token
        )
    }

    fn expiry(&self, expires_in_seconds: Option<u64>) -> Result<i64, EngineError> {
        let secs = expires_in_seconds.unwrap_or(DEFAULT_EXPIRES_IN_SECONDS);
        if secs == 0 || secs > MAX_EXPIRES_IN_SECONDS {
            return Err(invalid(
                "/expires_in_seconds",
                format!("expires_in_seconds must be 1 to {MAX_EXPIRES_IN_SECONDS} (7 days)"),
            ));
        }
        Ok(self.now() + (secs * 1000) as i64)
    }

    /// Stores a file uploaded in the request: typed by its bytes, at most `max_bytes`.
    pub async fn create_file(
        &self,
        tenant: &str,
        filename: &str,
        declared_type: Option<&str>,
        bytes: Vec<u8>,
        expires_in_seconds: Option<u64>,
    ) -> Result<(FileRecord, String), EngineError> {
        let expires_at_ms = self.expiry(expires_in_seconds)?;
        if bytes.is_empty() {
            return Err(invalid("/file", "the file is empty"));
        }
        let content_type = check_type(declared_type, &bytes[..bytes.len().min(SNIFF_BYTES)])
            .map_err(|m| invalid("/file", m))?;
        let record = FileRecord {
            id: new_file_id(),
            tenant: tenant.to_string(),
            filename: clean_name(filename),
            content_type,
            size_bytes: bytes.len() as u64,
            created_at_ms: self.now(),
            expires_at_ms,
            upload: UploadKind::Direct,
            token: new_token(),
        };
        // The bytes first: once the record exists, the file is whole.
        self.ports
            .blobs
            .put_once(&content_key(&record.id), bytes)
            .await?;
        crate::blobs::put_json(self.ports.blobs.as_ref(), &meta_key(&record.id), &record).await?;
        let url = self.file_url(&record);
        Ok((record, url))
    }

    /// Starts a presigned upload: the record now, the bytes later by one `PUT` of exactly
    /// `size_bytes` of `content_type` to the answered URL (the store's presigned PUT, or
    /// `None`: this API's own upload route).
    pub async fn start_upload(
        &self,
        tenant: &str,
        filename: &str,
        content_type: &str,
        size_bytes: u64,
        expires_in_seconds: Option<u64>,
    ) -> Result<(FileRecord, String, Option<String>), EngineError> {
        let expires_at_ms = self.expiry(expires_in_seconds)?;
        if size_bytes == 0 {
            return Err(invalid("/size_bytes", "size_bytes must be at least 1"));
        }
        // The declared type must be one that is taken (the bytes are checked on arrival).
        if let Err(m) = check_type(Some(content_type), &[]) {
            if m.contains("is not taken") {
                return Err(invalid("/content_type", m));
            }
        }
        let record = FileRecord {
            id: new_file_id(),
            tenant: tenant.to_string(),
            filename: clean_name(filename),
            content_type: content_type.to_string(),
            size_bytes,
            created_at_ms: self.now(),
            expires_at_ms,
            upload: UploadKind::Presigned,
            token: new_token(),
        };
        crate::blobs::put_json(self.ports.blobs.as_ref(), &meta_key(&record.id), &record).await?;
        let ttl = Duration::from_secs(3600);
        let put = self
            .ports
            .blobs
            .presigned_put(&content_key(&record.id), content_type, size_bytes, ttl)
            .await?;
        let url = self.file_url(&record);
        Ok((record, url, put))
    }

    /// Takes the bytes of a presigned upload sent to this API (the upload route of stores
    /// without a presigned PUT): the token must match, the size must be the declared one, the
    /// bytes the declared type.
    pub async fn put_upload(
        &self,
        id: &str,
        token: &str,
        bytes: Vec<u8>,
    ) -> Result<FileRecord, EngineError> {
        let f = self.file_by_token(id, token).await?;
        if f.upload != UploadKind::Presigned {
            return Err(EngineError::Conflict(format!("{id} was uploaded already")));
        }
        if bytes.len() as u64 != f.size_bytes {
            return Err(invalid(
                "/body",
                format!("{} bytes sent, {} declared", bytes.len(), f.size_bytes),
            ));
        }
        check_type(
            Some(&f.content_type),
            &bytes[..bytes.len().min(SNIFF_BYTES)],
        )
        .map_err(|m| invalid("/body", m))?;
        match self.ports.blobs.put_once(&content_key(id), bytes).await? {
            PutOutcome::Written => Ok(f),
            PutOutcome::AlreadyExists => {
                Err(EngineError::Conflict(format!("{id} was uploaded already")))
            }
        }
    }

    async fn record(&self, id: &str) -> Result<FileRecord, EngineError> {
        if !is_file_id(id) {
            return Err(EngineError::NotFound);
        }
        let f: FileRecord = crate::blobs::get_json(self.ports.blobs.as_ref(), &meta_key(id))
            .await?
            .ok_or(EngineError::NotFound)?;
        if f.expires_at_ms <= self.now() {
            // Gone: removed on the first access after its expiry (S3 also expires `files/`).
            self.remove(id).await?;
            return Err(EngineError::NotFound);
        }
        Ok(f)
    }

    async fn remove(&self, id: &str) -> Result<(), StoreError> {
        self.ports.blobs.delete(&content_key(id)).await?;
        self.ports.blobs.delete(&meta_key(id)).await
    }

    async fn file_by_token(&self, id: &str, token: &str) -> Result<FileRecord, EngineError> {
        let f = self.record(id).await?;
        let same = f.token.len() == token.len()
            && f.token
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(f)
        } else {
            Err(EngineError::NotFound)
        }
    }

    /// A tenant's file with its status and content URL (404 for others' and expired ones).
    /// A presigned upload is `ready` once bytes of the declared size and type arrived; bytes
    /// that are not are deleted, and the file stays `pending` with the reason.
    pub async fn file(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(FileRecord, FileStatus, String, Option<String>), EngineError> {
        let f = self.record(id).await?;
        if f.tenant != tenant {
            return Err(EngineError::NotFound);
        }
        let (status, problem) = self.status_of(&f).await?;
        let url = self.file_url(&f);
        Ok((f, status, url, problem))
    }

    async fn status_of(&self, f: &FileRecord) -> Result<(FileStatus, Option<String>), EngineError> {
        let key = content_key(&f.id);
        let Some(size) = self.ports.blobs.size(&key).await? else {
            return Ok((FileStatus::Pending, None));
        };
        if f.upload == UploadKind::Direct {
            return Ok((FileStatus::Ready, None));
        }
        let problem = if size != f.size_bytes {
            Some(format!("{size} bytes arrived, {} declared", f.size_bytes))
        } else {
            let head = self
                .ports
                .blobs
                .get_prefix(&key, SNIFF_BYTES)
                .await?
                .unwrap_or_default();
            check_type(Some(&f.content_type), &head).err()
        };
        match problem {
            None => Ok((FileStatus::Ready, None)),
            Some(p) => {
                self.ports.blobs.delete(&key).await?;
                Ok((
                    FileStatus::Pending,
                    Some(format!("the upload was refused and removed: {p}")),
                ))
            }
        }
    }

    /// Deletes a tenant's file (404 for others' and unknown ones).
    pub async fn delete_file(&self, tenant: &str, id: &str) -> Result<(), EngineError> {
        let f = self.record(id).await?;
        if f.tenant != tenant {
            return Err(EngineError::NotFound);
        }
        Ok(self.remove(id).await?)
    }

    /// A file's bytes for its content URL (the token is the capability).
    pub async fn file_content(
        &self,
        id: &str,
        token: &str,
    ) -> Result<(FileRecord, FileContent), EngineError> {
        let f = self.file_by_token(id, token).await?;
        let key = content_key(id);
        if let Some(url) = self
            .ports
            .blobs
            .presigned_get(&key, &f.content_type, Duration::from_secs(900))
            .await?
        {
            return Ok((f, FileContent::Redirect(url)));
        }
        let bytes = self
            .ports
            .blobs
            .get(&key)
            .await?
            .ok_or(EngineError::NotFound)?;
        Ok((f, FileContent::Bytes(bytes)))
    }

    /// The input with every file id the tenant owns replaced by the file's content URL; a file
    /// that is another tenant's, expired, deleted or not uploaded yet is a validation failure
    /// naming the field. Content URLs of this API are left as they are (they are the file).
    /// Where the model's input schema marks a field `x-media` (`{kind, max_bytes}`), a file
    /// named there must be of that kind and within that size.
    pub(crate) async fn resolve_files(
        &self,
        tenant: &str,
        model: &str,
        input: Value,
    ) -> Result<Value, EngineError> {
        let schema = self
            .ports
            .catalog
            .get(model)
            .map(|d| d.spec().input_schema.clone())
            .unwrap_or(Value::Null);
        let mut ids = Vec::new();
        collect_ids(&input, "/input", &mut ids);
        if ids.is_empty() {
            return Ok(input);
        }
        let mut urls = std::collections::HashMap::new();
        for (pointer, id) in &ids {
            if urls.contains_key(id) {
                continue;
            }
            let found = match self.file(tenant, id).await {
                Ok((f, FileStatus::Ready, url, _)) => Ok((f, url)),
                Ok((_, FileStatus::Pending, _, problem)) => Err(problem.unwrap_or_else(|| {
                    format!("file {id} has not been uploaded yet (PUT its upload_url first)")
                })),
                Err(EngineError::NotFound) => Err(format!(
                    "no file {id}: unknown, expired, deleted or another tenant's"
                )),
                Err(e) => return Err(e),
            };
            match found {
                Ok((f, url)) => {
                    if let Some(why) = media_mismatch(&schema, pointer, &f) {
                        return Err(invalid(pointer, why));
                    }
                    urls.insert(id.clone(), url);
                }
                Err(m) => return Err(invalid(pointer, m)),
            }
        }
        Ok(replace_ids(input, &urls))
    }
}

/// Why file `f` does not fit the `x-media` annotation of the field at `pointer` (`/input/a`,
/// `/input/a/0` for an array's items), if it has one.
fn media_mismatch(schema: &Value, pointer: &str, f: &FileRecord) -> Option<String> {
    let mut parts = pointer.trim_start_matches("/input/").split('/');
    let name = parts.next()?.replace("~1", "/").replace("~0", "~");
    let prop = &schema["properties"][name.as_str()];
    let media = if prop["x-media"].is_object() {
        &prop["x-media"]
    } else {
        &prop["items"]["x-media"]
    };
    let kind = media["kind"].as_str()?;
    if !f.content_type.starts_with(&format!("{kind}/")) {
        return Some(format!(
            "file {} is {}, this field takes {kind}/*",
            f.id, f.content_type
        ));
    }
    match media["max_bytes"].as_u64() {
        Some(max) if f.size_bytes > max => Some(format!(
            "file {} is {} bytes, this field takes at most {max}",
            f.id, f.size_bytes
        )),
        _ => None,
    }
}

fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

fn collect_ids(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) if is_file_id(s) => out.push((at.to_string(), s.clone())),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_ids(x, &format!("{at}/{i}"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                let k = k.replace('~', "~0").replace('/', "~1");
                collect_ids(x, &format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
}

fn replace_ids(v: Value, urls: &std::collections::HashMap<String, String>) -> Value {
    match v {
        Value::String(s) => match urls.get(&s) {
            Some(url) => Value::String(url.clone()),
            None => Value::String(s),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(|x| replace_ids(x, urls)).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, x)| (k, replace_ids(x, urls)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const MP4: &[u8] = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom";

    #[test]
    fn types_come_from_the_bytes_and_must_agree_with_the_declared_one() {
        assert_eq!(check_type(Some("image/png"), PNG).unwrap(), "image/png");
        assert_eq!(
            check_type(Some("image/jpeg"), PNG).unwrap(),
            "image/png",
            "the bytes' own subtype"
        );
        assert_eq!(check_type(None, PNG).unwrap(), "image/png");
        assert_eq!(
            check_type(Some("application/octet-stream"), MP4).unwrap(),
            "video/mp4"
        );
        let e = check_type(Some("image/png"), MP4).unwrap_err();
        assert_eq!(e, "declared image/png, but the bytes are video/mp4");
        let e = check_type(Some("image/png"), b"hello").unwrap_err();
        assert!(e.contains("not a known image format"), "{e}");
        assert_eq!(
            check_type(Some("text/plain; charset=utf-8"), b"hello").unwrap(),
            "text/plain"
        );
        assert!(check_type(Some("text/plain"), PNG).is_err());
        assert!(
            check_type(Some("application/x-sh"), b"#!/bin/sh")
                .unwrap_err()
                .contains("not taken")
        );
        assert!(
            check_type(None, b"plain words")
                .unwrap_err()
                .contains("send a Content-Type")
        );
    }

    #[test]
    fn file_ids_are_found_anywhere_in_an_input_and_replaced() {
        let id = "file_01jdz0v3k6q8y0f6g2m9r4t7wz";
        assert!(is_file_id(id));
        assert!(!is_file_id("file_short"));
        assert!(!is_file_id("https://x/file_01jdz0v3k6q8y0f6g2m9r4t7wz"));
        let input =
            json!({"image": id, "refs": [{"url": id}], "a/b": id, "prompt": "file_ not an id"});
        let mut ids = Vec::new();
        collect_ids(&input, "/input", &mut ids);
        let mut pointers: Vec<&str> = ids.iter().map(|(p, _)| p.as_str()).collect();
        pointers.sort_unstable();
        assert_eq!(
            pointers,
            ["/input/a~1b", "/input/image", "/input/refs/0/url"]
        );
        let urls = std::collections::HashMap::from([(id.to_string(), "https://u".to_string())]);
        let out = replace_ids(input, &urls);
        assert_eq!(out["image"], "https://u");
        assert_eq!(out["refs"][0]["url"], "https://u");
        assert_eq!(out["prompt"], "file_ not an id");
    }

    #[test]
    fn names_lose_their_directories_and_control_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\x\\cat.png"), "cat.png");
        assert_eq!(clean_name("a\nb.png"), "ab.png");
        assert_eq!(clean_name(""), "file");
    }
}
