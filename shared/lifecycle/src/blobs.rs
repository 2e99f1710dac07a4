//! JSON blobs, zstd-compressed, over any [`BlobStore`].

use crate::ports::{BlobStore, PutOutcome, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// zstd level: fast, and JSON compresses well even at low levels.
const LEVEL: i32 = 3;

thread_local! {
    // A zstd context per thread, reused: creating one per blob cost more than compressing it
    // (see docs/benchmarks.md).
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Largest blob a frame may claim to expand to before it is read as a stream instead.
const MAX_BULK: u64 = 64 << 20;

/// Serializes and compresses a value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    encode_bytes(&json)
}

/// Compresses bytes (JSON) as [`encode`] does; [`decode`] reads them.
pub fn encode_bytes(json: &[u8]) -> Result<Vec<u8>, StoreError> {
    let corrupt = |e: std::io::Error| StoreError::Corrupt(e.to_string());
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let c = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Compressor::new(LEVEL).map_err(corrupt)?),
        };
        c.compress(json).map_err(corrupt)
    })
}

/// Decompresses and parses a value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |e: std::io::Error| StoreError::Corrupt(e.to_string());
    // Our frames record their size: decompress in one call with a reused context.
    let size = zstd::zstd_safe::get_frame_content_size(bytes)
        .ok()
        .flatten();
    let json = match size {
        Some(n) if n <= MAX_BULK => DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            let d = match slot.as_mut() {
                Some(d) => d,
                None => slot.insert(zstd::bulk::Decompressor::new().map_err(corrupt)?),
            };
            d.decompress(bytes, n as usize).map_err(corrupt)
        })?,
        _ => zstd::stream::decode_all(bytes).map_err(corrupt)?,
    };
    serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Hex SHA-256 of a value's JSON (first 32 hex chars), for content-addressed keys.
pub fn content_hash<T: Serialize>(value: &T) -> Result<String, StoreError> {
    let json = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(hex::encode(Sha256::digest(&json))[..32].to_string())
}

/// Writes a JSON blob once; an existing key is not an error (write-once idempotency).
pub async fn put_json<T: Serialize>(
    store: &dyn BlobStore,
    key: &str,
    value: &T,
) -> Result<PutOutcome, StoreError> {
    store.put_once(key, encode(value)?).await
}

/// Reads a JSON blob.
pub async fn get_json<T: DeserializeOwned>(
    store: &dyn BlobStore,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match store.get(key).await? {
        Some(bytes) => decode(&bytes).map(Some),
        None => Ok(None),
    }
}

/// The blob key of re-hosted media (`media/<execution>/<sha256 hex>.<ext>`), or None when the
/// names are not ones the media store makes (so a request path cannot reach other blobs).
pub fn media_key(execution: &str, name: &str) -> Option<String> {
    let ok_exec = !execution.is_empty()
        && execution.len() <= 64
        && execution
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let (stem, ext) = name.split_once('.')?;
    let ok_name = stem.len() == 64
        && stem.bytes().all(|b| b.is_ascii_hexdigit())
        && !ext.is_empty()
        && ext.len() <= 5
        && ext.bytes().all(|b| b.is_ascii_alphanumeric());
    (ok_exec && ok_name).then(|| format!("media/{execution}/{name}"))
}

/// The content type of a re-hosted media name, from its extension.
pub fn media_mime(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "png" => "image/png",
        "jpg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "json" => "application/json",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip() {
        let v = serde_json::json!({"a": [1, 2, 3], "big": 196619188014358660u64});
        let bytes = encode(&v).unwrap();
        let back: serde_json::Value = decode(&bytes).unwrap();
        assert_eq!(v, back);
        assert_eq!(content_hash(&v).unwrap().len(), 32);
    }
}
