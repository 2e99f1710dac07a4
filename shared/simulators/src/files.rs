//! Generated media served by the simulator itself: real (tiny) PNGs and a stub MP4, stored per
//! job and served at `{provider base}/files/{id}/{name}` without authentication, like the
//! providers' CDNs (`replicate.delivery`, fal media, Runway's signed URLs).

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use image::{ImageFormat, Rgb, RgbImage};
use parking_lot::Mutex;

use crate::state::SimState;

/// Largest side of a generated PNG, in pixels.
pub const MAX_SIDE: u32 = 16;

/// What kind of media a model produces, guessed from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// PNG images.
    Image,
    /// MP4 videos.
    Video,
    /// Text (language models): no files.
    Text,
}

impl MediaKind {
    /// Guesses from a model or endpoint name (`…video…`, `…llama…`, …).
    pub fn guess(model: &str) -> MediaKind {
        let m = model.to_ascii_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
        if any(&["image", "flux", "sdxl", "diffusion", "imagen"]) {
            MediaKind::Image
        } else if any(&["video", "kling", "veo", "hailuo", "wan-", "minimax"]) {
            MediaKind::Video
        } else if any(&[
            "llama", "mistral", "gpt", "claude", "qwen", "gemma", "deepseek", "granite",
        ]) {
            MediaKind::Text
        } else {
            MediaKind::Image
        }
    }
}

/// A stored output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// Absolute URL served by the simulator.
    pub url: String,
    /// File name (last URL segment).
    pub file_name: String,
    /// MIME type.
    pub content_type: &'static str,
    /// Pixel width (0 for video stubs).
    pub width: u32,
    /// Pixel height (0 for video stubs).
    pub height: u32,
    /// Size in bytes.
    pub size: usize,
}

/// Content type and bytes of a stored file.
type Stored = (&'static str, Bytes);

/// In-memory file store keyed by (job id, file name).
#[derive(Debug, Default)]
pub struct FileStore {
    files: Mutex<HashMap<(String, String), Stored>>,
}

impl FileStore {
    /// Stores `bytes` and returns its reference under `base` (a provider base URL).
    pub fn put(
        &self,
        base: &str,
        id: &str,
        name: &str,
        content_type: &'static str,
        bytes: Vec<u8>,
        dims: (u32, u32),
    ) -> FileRef {
        let size = bytes.len();
        self.files.lock().insert(
            (id.to_owned(), name.to_owned()),
            (content_type, Bytes::from(bytes)),
        );
        FileRef {
            url: format!("{base}/files/{id}/{name}"),
            file_name: name.to_owned(),
            content_type,
            width: dims.0,
            height: dims.1,
            size,
        }
    }

    /// Generates and stores `count` outputs of `kind` named `{stem}-{i}.{ext}`.
    pub fn generate(
        &self,
        base: &str,
        id: &str,
        stem: &str,
        kind: MediaKind,
        count: usize,
        size: (u32, u32),
    ) -> Result<Vec<FileRef>, image::ImageError> {
        let (w, h) = shrink(size.0, size.1);
        (0..count)
            .map(|i| {
                Ok(match kind {
                    MediaKind::Video => self.put(
                        base,
                        id,
                        &format!("{stem}-{i}.mp4"),
                        "video/mp4",
                        mp4_stub(),
                        (0, 0),
                    ),
                    _ => {
                        let png = png(w, h, seed_of(id, i))?;
                        self.put(
                            base,
                            id,
                            &format!("{stem}-{i}.png"),
                            "image/png",
                            png,
                            (w, h),
                        )
                    }
                })
            })
            .collect()
    }

    /// The stored content type and bytes of a file.
    pub fn get(&self, id: &str, name: &str) -> Option<Stored> {
        self.files
            .lock()
            .get(&(id.to_owned(), name.to_owned()))
            .cloned()
    }
}

/// Scales requested dimensions down so the larger side is at most [`MAX_SIDE`].
pub fn shrink(width: u32, height: u32) -> (u32, u32) {
    let (w, h) = (width.max(1), height.max(1));
    let longest = w.max(h);
    if longest <= MAX_SIDE {
        return (w, h);
    }
    let scale = |v: u32| {
        u32::try_from(u64::from(v) * u64::from(MAX_SIDE) / u64::from(longest))
            .unwrap_or(1)
            .max(1)
    };
    (scale(w), scale(h))
}

fn seed_of(id: &str, index: usize) -> u32 {
    id.bytes().fold(
        u32::try_from(index)
            .unwrap_or(0)
            .wrapping_mul(2_654_435_761),
        |acc, b| acc.rotate_left(5) ^ u32::from(b),
    )
}

/// A real PNG of `width`×`height` with a gradient seeded by `seed`.
pub fn png(width: u32, height: u32, seed: u32) -> Result<Vec<u8>, image::ImageError> {
    let [a, b, c, _] = seed.to_le_bytes();
    let img = RgbImage::from_fn(width, height, |x, y| {
        let fx = u8::try_from(x * 255 / width.max(1)).unwrap_or(255);
        let fy = u8::try_from(y * 255 / height.max(1)).unwrap_or(255);
        Rgb([fx ^ a, fy ^ b, c])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// A PNG at the size a real provider returns (a 1024×1024 photo is megabytes): a gradient
/// under fine-grained noise, which PNG cannot compress much, so its size is that of a real
/// generated image (≈ 1.5–2 MB at 1024×1024). Made once per size and shared, since encoding
/// megabytes for every simulated request would dominate the suites' time.
pub fn photo_png(width: u32, height: u32) -> Result<std::sync::Arc<Vec<u8>>, image::ImageError> {
    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock};
    type Made = parking_lot::Mutex<HashMap<(u32, u32), Arc<Vec<u8>>>>;
    static MADE: OnceLock<Made> = OnceLock::new();
    let made = MADE.get_or_init(Default::default);
    let key = (width.clamp(1, 4096), height.clamp(1, 4096));
    if let Some(png) = made.lock().get(&key) {
        return Ok(png.clone());
    }
    let (w, h) = key;
    let mut state: u32 = 0x9E37_79B9;
    let img = RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [n0, n1, n2, _] = state.to_le_bytes();
        let fx = u8::try_from(x * 200 / w).unwrap_or(200);
        let fy = u8::try_from(y * 200 / h).unwrap_or(200);
        Rgb([fx + (n0 & 0x37), fy + (n1 & 0x37), 40 + (n2 & 0x37)])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)?;
    let png = Arc::new(out.into_inner());
    made.lock().insert(key, png.clone());
    Ok(png)
}

/// A real PNG of `width`×`height` in one flat grey: what a blurred (filtered) image looks like.
pub fn flat_png(width: u32, height: u32) -> Result<Vec<u8>, image::ImageError> {
    let img = RgbImage::from_pixel(width.max(1), height.max(1), Rgb([128, 128, 128]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// A minimal MP4 (an `ftyp` box and an empty `mdat`): recognised as MP4, not playable.
pub fn mp4_stub() -> Vec<u8> {
    let mut v = Vec::with_capacity(32);
    v.extend_from_slice(&24u32.to_be_bytes());
    v.extend_from_slice(b"ftypisom");
    v.extend_from_slice(&0x200u32.to_be_bytes());
    v.extend_from_slice(b"isomiso2");
    v.extend_from_slice(&8u32.to_be_bytes());
    v.extend_from_slice(b"mdat");
    v
}

/// `GET {base}/files/{id}/{name}`.
pub async fn serve(
    State(state): State<Arc<SimState>>,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    match state.files.get(&id, &name) {
        Some((content_type, bytes)) => {
            ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn png_is_decodable_and_small() {
        let bytes = png(8, 6, 42).unwrap();
        let img = image::load_from_memory_with_format(&bytes, ImageFormat::Png).unwrap();
        assert_eq!((img.width(), img.height()), (8, 6));
        assert_eq!(shrink(1024, 1536), (10, 16));
        assert_eq!(shrink(8, 8), (8, 8));
    }

    #[test]
    fn photos_have_real_sizes() {
        let bytes = photo_png(1024, 1024).unwrap();
        let img = image::load_from_memory_with_format(&bytes, ImageFormat::Png).unwrap();
        assert_eq!((img.width(), img.height()), (1024, 1024));
        assert!(
            (1_000_000..4_000_000).contains(&bytes.len()),
            "{} bytes",
            bytes.len()
        );
        assert!(std::sync::Arc::ptr_eq(
            &bytes,
            &photo_png(1024, 1024).unwrap()
        ));
    }

    #[test]
    fn guesses_media_kind() {
        assert_eq!(MediaKind::guess("fal-ai/flux/dev"), MediaKind::Image);
        assert_eq!(MediaKind::guess("fal-ai/kling-video/v2"), MediaKind::Video);
        assert_eq!(
            MediaKind::guess("meta/meta-llama-3-8b-instruct"),
            MediaKind::Text
        );
    }
}
