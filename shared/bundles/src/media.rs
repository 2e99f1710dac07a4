//! Media in steps: fetching input files by URL without letting a URL reach inside our network
//! (the same [`OutboundPolicy`] as customer webhooks: scheme, credentials and literal hosts
//! checked first, every resolved address checked when connecting, no redirects followed),
//! decoding `data:` URIs, and image transformations within size limits.
//!
//! A media value in the step context is a JSON object
//! `{base64, data_uri, mime_type, bytes, width?, height?, url?}`.

use crate::format::{Fit, ImageFormat, Resize};
use base64::Engine as _;
use executor_lifecycle::ErrorClass;
use executor_lifecycle::netguard::OutboundPolicy;
use serde_json::{Value, json};
use std::io::Cursor;
use std::time::Duration;

/// Why media could not be read or made.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaError {
    /// The class: `validation_error` for what the input got wrong, `timeout` for slow hosts.
    pub class: ErrorClass,
    /// What happened.
    pub message: String,
}

fn invalid(message: impl Into<String>) -> MediaError {
    MediaError {
        class: ErrorClass::ValidationError,
        message: message.into(),
    }
}

/// Where re-hosted media goes, and the stable URL it gets.
#[async_trait::async_trait]
pub trait MediaStore: Send + Sync {
    /// Stores `bytes` of an execution; returns the stable URL. Storing the same bytes again
    /// gives the same URL.
    async fn put(&self, execution: &str, bytes: Vec<u8>, mime: &str) -> Result<String, String>;
}

/// The file extension of a MIME type (for stored media names).
pub fn extension(mime: &str) -> &'static str {
    match mime {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "audio/mpeg" => "mp3",
        "audio/wav" | "audio/x-wav" => "wav",
        "audio/ogg" | "audio/opus" => "ogg",
        "application/json" => "json",
        "text/plain" => "txt",
        _ => "bin",
    }
}

/// Media in the lifecycle's blob store (S3 or local files) under `media/<execution>/`, named
/// by the SHA-256 of the bytes, served by the API at `GET /v1/media/<execution>/<name>`. The
/// name is a capability: it cannot be guessed without the bytes.
pub struct BlobMediaStore {
    blobs: std::sync::Arc<dyn executor_lifecycle::BlobStore>,
    public_base_url: String,
}

impl BlobMediaStore {
    /// A store over `blobs`, with URLs under `public_base_url`.
    pub fn new(
        blobs: std::sync::Arc<dyn executor_lifecycle::BlobStore>,
        public_base_url: &str,
    ) -> BlobMediaStore {
        BlobMediaStore {
            blobs,
            public_base_url: public_base_url.trim_end_matches('/').to_string(),
        }
    }
}

#[async_trait::async_trait]
impl MediaStore for BlobMediaStore {
    async fn put(&self, execution: &str, bytes: Vec<u8>, mime: &str) -> Result<String, String> {
        use sha2::Digest;
        let name = format!(
            "{}.{}",
            hex::encode(sha2::Sha256::digest(&bytes)),
            extension(mime)
        );
        let key = executor_lifecycle::blobs::media_key(execution, &name)
            .ok_or_else(|| format!("execution id {execution:?} cannot name media"))?;
        self.blobs
            .put_once(&key, bytes)
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "{}/v1/media/{execution}/{name}",
            self.public_base_url
        ))
    }
}

/// The outbound client for media URLs.
#[derive(Clone)]
pub struct MediaClient {
    client: reqwest::Client,
    policy: OutboundPolicy,
}

impl MediaClient {
    /// A client that reaches only what `policy` allows.
    pub fn new(policy: OutboundPolicy) -> Result<MediaClient, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(std::sync::Arc::new(crate::sender::GuardedResolver(policy)))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(MediaClient { client, policy })
    }

    /// The policy.
    pub fn policy(&self) -> OutboundPolicy {
        self.policy
    }

    /// Fetches `url` as raw bytes and content type (the `rehost` action). The bytes are held
    /// once: a rehosted video of tens of megabytes is never base64-encoded (a media value
    /// holds its bytes three times over, as `data_uri` and `base64` text).
    pub async fn fetch_bytes(
        &self,
        url: &str,
        max_bytes: u64,
        accept: &[String],
        timeout: Duration,
    ) -> Result<(String, Vec<u8>), MediaError> {
        if url.starts_with("data:") {
            let (mime, bytes) = decode_data_uri(url, max_bytes)?;
            check_type(&mime, accept)?;
            return Ok((mime, bytes));
        }
        self.fetch_raw(url, max_bytes, accept, timeout).await
    }

    /// Fetches `url` (or decodes a `data:` URI) as a media value.
    pub async fn fetch(
        &self,
        url: &str,
        max_bytes: u64,
        accept: &[String],
        timeout: Duration,
    ) -> Result<Value, MediaError> {
        if url.starts_with("data:") {
            let (mime, bytes) = decode_data_uri(url, max_bytes)?;
            check_type(&mime, accept)?;
            return Ok(media_value(&mime, &bytes, None));
        }
        let (mime, bytes) = self.fetch_raw(url, max_bytes, accept, timeout).await?;
        Ok(media_value(&mime, &bytes, Some(url)))
    }

    /// GETs `url` within the policy, `max_bytes` (bounded while reading), the accepted types
    /// and `timeout`: its content type and bytes.
    async fn fetch_raw(
        &self,
        url: &str,
        max_bytes: u64,
        accept: &[String],
        timeout: Duration,
    ) -> Result<(String, Vec<u8>), MediaError> {
        self.policy
            .check_url(url)
            .map_err(|e| invalid(format!("{}: {e}", shown(url))))?;
        let resp = self
            .client
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    MediaError {
                        class: ErrorClass::Timeout,
                        message: format!("{}: no answer in time", shown(url)),
                    }
                } else {
                    invalid(format!("{}: could not fetch ({})", shown(url), root(&e)))
                }
            })?;
        if !resp.status().is_success() {
            return Err(invalid(format!(
                "{}: the server answered {}",
                shown(url),
                resp.status().as_u16()
            )));
        }
        if resp.content_length().is_some_and(|n| n > max_bytes) {
            return Err(invalid(format!(
                "{}: larger than {max_bytes} bytes",
                shown(url)
            )));
        }
        let mime = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .unwrap_or_else(|| "application/octet-stream".into());
        check_type(&mime, accept)?;
        let mut resp = resp;
        // Sized once from Content-Length (bounded): no doubling reallocations of a large body.
        let mut bytes = Vec::with_capacity(
            usize::try_from(resp.content_length().unwrap_or(0).min(max_bytes)).unwrap_or(0),
        );
        while let Some(chunk) = resp.chunk().await.map_err(|e| MediaError {
            class: if e.is_timeout() {
                ErrorClass::Timeout
            } else {
                ErrorClass::ValidationError
            },
            message: format!("{}: {}", shown(url), root(&e)),
        })? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max_bytes {
                return Err(invalid(format!(
                    "{}: larger than {max_bytes} bytes",
                    shown(url)
                )));
            }
        }
        Ok((mime, bytes))
    }
}

/// A URL without its query (which may carry a signature).
fn shown(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn root(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn check_type(mime: &str, accept: &[String]) -> Result<(), MediaError> {
    if accept.is_empty() || accept.iter().any(|a| mime.starts_with(a.as_str())) {
        Ok(())
    } else {
        Err(invalid(format!(
            "content type {mime} is not accepted (expected {})",
            accept.join(" or ")
        )))
    }
}

/// The media value of some bytes.
pub fn media_value(mime: &str, bytes: &[u8], url: Option<&str>) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut v = json!({
        "mime_type": mime,
        "bytes": bytes.len(),
        "data_uri": format!("data:{mime};base64,{b64}"),
        "base64": b64,
    });
    if let Some(u) = url {
        v["url"] = json!(u);
    }
    v
}

/// Decodes a `data:[mime][;base64],payload` URI, refusing more than `max_bytes`.
pub fn decode_data_uri(uri: &str, max_bytes: u64) -> Result<(String, Vec<u8>), MediaError> {
    let rest = uri
        .strip_prefix("data:")
        .ok_or_else(|| invalid("not a data URI"))?;
    let (meta, payload) = rest
        .split_once(',')
        .ok_or_else(|| invalid("data URI without a comma"))?;
    // Base64 length bounds the decoded size: refuse before decoding.
    if (payload.len() as u64).saturating_mul(3) / 4 > max_bytes.saturating_add(3) {
        return Err(invalid(format!("data URI larger than {max_bytes} bytes")));
    }
    let mime = meta
        .split(';')
        .next()
        .filter(|m| !m.is_empty())
        .unwrap_or("text/plain")
        .to_string();
    let bytes = if meta.ends_with(";base64") {
        base64::engine::general_purpose::STANDARD
            .decode(payload.trim())
            .map_err(|e| invalid(format!("data URI is not valid base64 ({e})")))?
    } else {
        payload.as_bytes().to_vec()
    };
    if bytes.len() as u64 > max_bytes {
        return Err(invalid(format!("data URI larger than {max_bytes} bytes")));
    }
    Ok((mime, bytes))
}

/// The bytes of a source: a media value, a data URI, or plain base64.
pub fn source_bytes(source: &Value, max_bytes: u64) -> Result<Vec<u8>, MediaError> {
    let text = match source {
        Value::Object(o) => o
            .get("base64")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("the source has no base64 field"))?,
        Value::String(s) => s.as_str(),
        _ => return Err(invalid("the source is neither media nor a string")),
    };
    if text.starts_with("data:") {
        return decode_data_uri(text, max_bytes).map(|(_, b)| b);
    }
    if (text.len() as u64).saturating_mul(3) / 4 > max_bytes.saturating_add(3) {
        return Err(invalid(format!("image larger than {max_bytes} bytes")));
    }
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| invalid(format!("the source is not base64 ({e})")))
}

/// Limits of an image transformation.
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    /// Largest encoded input, in bytes.
    pub max_bytes: u64,
    /// Largest decoded input, in pixels.
    pub max_pixels: u64,
}

/// The dimensions of an encoded image, read from its header only.
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32, &'static str), MediaError> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| invalid(format!("not an image ({e})")))?;
    let format = reader
        .format()
        .ok_or_else(|| invalid("not an image in a known format (png, jpeg, webp)"))?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| invalid(format!("not a readable image ({e})")))?;
    Ok((w, h, format.to_mime_type()))
}

/// Decodes, resizes and re-encodes an image.
pub fn transform(
    bytes: &[u8],
    resize: Option<&Resize>,
    format: ImageFormat,
    quality: u8,
    limits: ImageLimits,
) -> Result<Value, MediaError> {
    if bytes.len() as u64 > limits.max_bytes {
        return Err(invalid(format!(
            "image of {} bytes is larger than {} bytes",
            bytes.len(),
            limits.max_bytes
        )));
    }
    let (w, h, _) = dimensions(bytes)?;
    if u64::from(w) * u64::from(h) > limits.max_pixels {
        return Err(invalid(format!(
            "image of {w}x{h} pixels is larger than {} pixels",
            limits.max_pixels
        )));
    }
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| invalid(format!("not an image ({e})")))?;
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(w);
    lim.max_image_height = Some(h);
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(lim);
    let img = reader
        .decode()
        .map_err(|e| invalid(format!("image could not be decoded ({e})")))?;
    let img = match resize {
        None => img,
        Some(r) if r.width == 0 || r.height == 0 => {
            return Err(invalid("resize box must be at least 1x1"));
        }
        Some(r) => {
            let filter = image::imageops::FilterType::Triangle;
            match r.fit {
                Fit::Contain => img.resize(r.width, r.height, filter),
                Fit::Cover => img.resize_to_fill(r.width, r.height, filter),
                Fit::Fill => img.resize_exact(r.width, r.height, filter),
            }
        }
    };
    let (out_w, out_h) = (img.width(), img.height());
    let mut out = Cursor::new(Vec::new());
    let mime = match format {
        ImageFormat::Png => {
            img.write_to(&mut out, image::ImageFormat::Png)
                .map_err(|e| invalid(format!("png encoding failed ({e})")))?;
            "image/png"
        }
        ImageFormat::Jpeg => {
            let enc =
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
            img.to_rgb8()
                .write_with_encoder(enc)
                .map_err(|e| invalid(format!("jpeg encoding failed ({e})")))?;
            "image/jpeg"
        }
        ImageFormat::Webp => {
            let enc = image::codecs::webp::WebPEncoder::new_lossless(&mut out);
            img.to_rgba8()
                .write_with_encoder(enc)
                .map_err(|e| invalid(format!("webp encoding failed ({e})")))?;
            "image/webp"
        }
    };
    let bytes = out.into_inner();
    let mut v = media_value(mime, &bytes, None);
    v["width"] = json!(out_w);
    v["height"] = json!(out_h);
    Ok(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn limits() -> ImageLimits {
        ImageLimits {
            max_bytes: 10_000_000,
            max_pixels: 10_000_000,
        }
    }

    #[test]
    fn resizes_and_converts() {
        let src = png(64, 32);
        let box_ = Resize {
            width: 16,
            height: 16,
            fit: Fit::Contain,
        };
        let v = transform(&src, Some(&box_), ImageFormat::Jpeg, 80, limits()).unwrap();
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(16), Some(8))
        );
        assert_eq!(v["mime_type"], "image/jpeg");
        let bytes = source_bytes(&v, 1_000_000).unwrap();
        assert_eq!(dimensions(&bytes).unwrap(), (16, 8, "image/jpeg"));
        let cover = Resize {
            width: 10,
            height: 10,
            fit: Fit::Cover,
        };
        let v = transform(&src, Some(&cover), ImageFormat::Webp, 80, limits()).unwrap();
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(10), Some(10))
        );
        let bytes = source_bytes(&json!(v["data_uri"]), 1_000_000).unwrap();
        assert_eq!(dimensions(&bytes).unwrap().2, "image/webp");
    }

    #[test]
    fn limits_and_garbage_are_refused_with_a_reason() {
        let src = png(100, 100);
        let small = ImageLimits {
            max_bytes: 10_000_000,
            max_pixels: 5_000,
        };
        let e = transform(&src, None, ImageFormat::Png, 90, small).unwrap_err();
        assert_eq!(e.class, ErrorClass::ValidationError);
        assert!(e.message.contains("100x100"), "{}", e.message);
        let tiny = ImageLimits {
            max_bytes: 10,
            max_pixels: 10_000_000,
        };
        assert!(
            transform(&src, None, ImageFormat::Png, 90, tiny)
                .unwrap_err()
                .message
                .contains("bytes")
        );
        let e = transform(b"not an image at all", None, ImageFormat::Png, 90, limits());
        assert!(e.is_err());
        assert!(decode_data_uri("data:image/png;base64,!!!", 100).is_err());
        let big = format!("data:image/png;base64,{}", "A".repeat(4000));
        assert!(
            decode_data_uri(&big, 100)
                .unwrap_err()
                .message
                .contains("larger")
        );
    }

    #[tokio::test]
    async fn private_addresses_are_not_fetched() {
        let c = MediaClient::new(OutboundPolicy::default()).unwrap();
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/x.png",
            "http://127.0.0.1:9/x.png",
            "http://localhost/x.png",
            "file:///etc/passwd",
        ] {
            let e = c
                .fetch(url, 1000, &[], Duration::from_secs(1))
                .await
                .unwrap_err();
            assert_eq!(e.class, ErrorClass::ValidationError, "{url}");
        }
    }
}
