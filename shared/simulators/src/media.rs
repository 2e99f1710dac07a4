//! Real-size media for the simulators: photos in PNG, JPEG or WebP at the requested pixel
//! size (hundreds of kilobytes to megabytes, as real generated images are), SVG documents,
//! binary glTF (`.glb`) 3D models of a real model's size, and silent MP3 speech. Each is
//! made once per shape and shared ([`Bytes`] clones share one copy), since encoding
//! megabytes for every simulated request would dominate the suites' time.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::OnceLock;

use bytes::Bytes;
use image::{ImageFormat, RgbImage};
use parking_lot::Mutex;

/// An image encoding a provider can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageKind {
    /// PNG (lossless, the largest).
    Png,
    /// JPEG at quality 90.
    Jpeg,
    /// WebP (lossless: the only WebP encoder of the `image` crate).
    Webp,
}

impl ImageKind {
    /// Parses `png`, `jpeg`/`jpg`, `webp` (case-insensitive); `None` otherwise.
    pub fn parse(name: &str) -> Option<ImageKind> {
        match name.to_ascii_lowercase().as_str() {
            "png" => Some(ImageKind::Png),
            "jpeg" | "jpg" => Some(ImageKind::Jpeg),
            "webp" => Some(ImageKind::Webp),
            _ => None,
        }
    }

    /// The MIME type.
    pub fn content_type(self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Webp => "image/webp",
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Jpeg => "jpeg",
            ImageKind::Webp => "webp",
        }
    }
}

/// Largest side of a generated photo (larger requests are scaled down to it).
pub const PHOTO_MAX_SIDE: u32 = 2048;

type Cache<K> = Mutex<HashMap<K, Bytes>>;

fn cached<K: std::hash::Hash + Eq + Copy>(
    cache: &'static OnceLock<Cache<K>>,
    key: K,
    make: impl FnOnce() -> Result<Vec<u8>, image::ImageError>,
) -> Result<Bytes, image::ImageError> {
    let table = cache.get_or_init(Default::default);
    if let Some(b) = table.lock().get(&key) {
        return Ok(b.clone());
    }
    let made = Bytes::from(make()?);
    table.lock().insert(key, made.clone());
    Ok(made)
}

/// The pixel size a photo of `width`x`height` is made at (at most [`PHOTO_MAX_SIDE`]).
pub fn photo_size(width: u32, height: u32) -> (u32, u32) {
    let (w, h) = (width.max(1), height.max(1));
    let longest = w.max(h);
    if longest <= PHOTO_MAX_SIDE {
        return (w, h);
    }
    let scale = |v: u32| {
        u32::try_from(u64::from(v) * u64::from(PHOTO_MAX_SIDE) / u64::from(longest))
            .unwrap_or(1)
            .max(1)
    };
    (scale(w), scale(h))
}

/// Photo-like RGB pixels: a gradient under fine noise (one noise row reused at shifting
/// offsets, so making them costs about a copy of the bytes, even in a debug build).
pub fn pixels(w: u32, h: u32) -> Vec<u8> {
    let (wu, hu) = (w.max(1) as usize, h.max(1) as usize);
    let mut state: u32 = 0x9E37_79B9;
    let mut noise = vec![0u8; 3 * wu + 256];
    for b in &mut noise {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *b = (state & 0x37) as u8;
    }
    let gx: Vec<u8> = (0..wu)
        .map(|x| u8::try_from(x * 200 / wu).unwrap_or(200))
        .collect();
    let mut out = vec![0u8; 3 * wu * hu];
    for (y, row) in out.chunks_mut(3 * wu).enumerate() {
        let fy = u8::try_from(y * 200 / hu).unwrap_or(200);
        let off = (y * 97) % 256;
        for (x, px) in row.chunks_mut(3).enumerate() {
            let n = &noise[off + 3 * x..off + 3 * x + 3];
            px[0] = gx[x] + n[0];
            px[1] = fy + n[1];
            px[2] = 40 + n[2];
        }
    }
    out
}

fn crc32(parts: &[&[u8]]) -> u32 {
    static TABLE: OnceLock<[u32; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut c = 0xFFFF_FFFFu32;
    for part in parts {
        for &b in *part {
            c = table[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
        }
    }
    c ^ 0xFFFF_FFFF
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
}

/// A real PNG of photo-like pixels (8-bit indexed colour: a 256-colour gradient palette
/// under fine noise), its image data in *stored* (uncompressed) deflate blocks: ≈ 1 MB at
/// 1024x1024, within the size of a real generated PNG (1–3 MB), made in a fraction of the
/// time an encoder takes to compress noise — which matters in debug builds, where a create
/// call that makes its outputs must stay within a client's submit timeout.
pub fn stored_png(w: u32, h: u32) -> Vec<u8> {
    let (w, h) = (w.max(1), h.max(1));
    let (wu, hu) = (w as usize, h as usize);
    let mut state: u32 = 0x9E37_79B9;
    let mut noise = vec![0u8; wu + 256];
    for b in &mut noise {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *b = (state & 0x1F) as u8;
    }
    let gx: Vec<u8> = (0..wu)
        .map(|x| u8::try_from(x * 112 / wu).unwrap_or(112))
        .collect();
    let mut raw = vec![0u8; (wu + 1) * hu];
    for (y, row) in raw.chunks_mut(wu + 1).enumerate() {
        let gy = u8::try_from(y * 112 / hu).unwrap_or(112);
        let off = (y * 97) % 256;
        for (x, px) in row[1..].iter_mut().enumerate() {
            *px = gx[x] + gy + noise[off + x];
        }
    }
    let palette: Vec<u8> = (0..=255u32)
        .flat_map(|i| {
            let v = u8::try_from(i).unwrap_or(255);
            [v, 255 - v / 2, 40 + v / 4]
        })
        .collect();
    let mut z = Vec::with_capacity(raw.len() + raw.len() / 65_535 * 5 + 16);
    z.extend_from_slice(&[0x78, 0x01]);
    let blocks = raw.chunks(65_535).count();
    for (i, block) in raw.chunks(65_535).enumerate() {
        z.push(u8::from(i + 1 == blocks));
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for block in raw.chunks(5552) {
        for &x in block {
            a += u32::from(x);
            b += a;
        }
        a %= 65_521;
        b %= 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = Vec::with_capacity(z.len() + 64);
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 3, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"PLTE", &palette);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A photo-like image (a gradient under fine noise, which compresses like a photo) of
/// `width`x`height` (see [`photo_size`]) in `kind`: a 1024x1024 PNG is ≈ 1 MB
/// ([`stored_png`]), a JPEG a few hundred KB.
pub fn photo(width: u32, height: u32, kind: ImageKind) -> Result<Bytes, image::ImageError> {
    static MADE: OnceLock<Cache<(u32, u32, ImageKind)>> = OnceLock::new();
    let (w, h) = photo_size(width, height);
    cached(&MADE, (w, h, kind), || {
        if kind == ImageKind::Png {
            return crate::files::photo_png(w, h).map(|b| b.to_vec());
        }
        let Some(img) = RgbImage::from_raw(w, h, pixels(w, h)) else {
            return Ok(Vec::new());
        };
        let mut out = Cursor::new(Vec::new());
        match kind {
            ImageKind::Jpeg => {
                let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
                img.write_with_encoder(encoder)?;
            }
            _ => img.write_to(&mut out, ImageFormat::WebP)?,
        }
        Ok(out.into_inner())
    })
}

/// An SVG document of `width`x`height` with enough paths to weigh what a vectorized
/// illustration does (≈ 60 KB).
pub fn svg(width: u32, height: u32) -> Bytes {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    for i in 0..1200u32 {
        let (x, y) = ((i * 37) % width.max(1), (i * 53) % height.max(1));
        s.push_str(&format!(
            "<path fill=\"#{:06x}\" d=\"M{x} {y}l{} {}l-{} {}z\"/>",
            (i * 2_654_435) & 0xFF_FFFF,
            20 + i % 40,
            10 + i % 30,
            15 + i % 20,
            25 + i % 35
        ));
    }
    s.push_str("</svg>");
    Bytes::from(s)
}

/// Bytes of a generated 3D model: ≈ 3 MB, what a textured GLB from a text-to-3D model weighs.
pub const GLB_BYTES: usize = 3_000_000;

/// A valid binary glTF 2.0 file (`glTF` magic, version 2, a JSON chunk describing one
/// triangle mesh and a `BIN` chunk holding its buffer) padded to [`GLB_BYTES`].
pub fn glb() -> Bytes {
    static MADE: OnceLock<Bytes> = OnceLock::new();
    MADE.get_or_init(|| {
        let bin_len = GLB_BYTES - 1024;
        let json = format!(
            concat!(
                "{{\"asset\":{{\"version\":\"2.0\",\"generator\":\"executor-simulators\"}},",
                "\"scene\":0,\"scenes\":[{{\"nodes\":[0]}}],\"nodes\":[{{\"mesh\":0}}],",
                "\"meshes\":[{{\"primitives\":[{{\"attributes\":{{\"POSITION\":0}}}}]}}],",
                "\"accessors\":[{{\"bufferView\":0,\"componentType\":5126,\"count\":3,\"type\":\"VEC3\",",
                "\"min\":[0,0,0],\"max\":[1,1,0]}}],",
                "\"bufferViews\":[{{\"buffer\":0,\"byteLength\":36}}],",
                "\"buffers\":[{{\"byteLength\":{}}}]}}"
            ),
            bin_len
        );
        let mut json = json.into_bytes();
        while json.len() % 4 != 0 {
            json.push(b' ');
        }
        let mut bin = Vec::with_capacity(bin_len);
        for f in [0f32, 0., 0., 1., 0., 0., 0., 1., 0.] {
            bin.extend_from_slice(&f.to_le_bytes());
        }
        bin.resize(bin_len, 0);
        let total = 12 + 8 + json.len() + 8 + bin.len();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(b"glTF");
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&u32::try_from(total).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&u32::try_from(json.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(b"JSON");
        out.extend_from_slice(&json);
        out.extend_from_slice(&u32::try_from(bin.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(b"BIN\0");
        out.extend_from_slice(&bin);
        Bytes::from(out)
    })
    .clone()
}

/// Silent MP3 speech (44.1 kHz, 128 kbit/s) for `text` (about 15 characters a second).
pub fn speech_mp3(text: &str) -> Vec<u8> {
    use crate::elevenlabs::audio::{Format, duration_seconds};
    Format::Mp3 {
        rate: 44_100,
        kbps: 128,
    }
    .render(duration_seconds(text))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn photos_are_real_images_of_real_size() {
        let jpeg = photo(512, 512, ImageKind::Jpeg).unwrap();
        let img = image::load_from_memory_with_format(&jpeg, ImageFormat::Jpeg).unwrap();
        assert_eq!((img.width(), img.height()), (512, 512));
        assert!(jpeg.len() > 100_000, "{} bytes", jpeg.len());
        let png = photo(1024, 1024, ImageKind::Png).unwrap();
        let img = image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap();
        assert_eq!((img.width(), img.height()), (1024, 1024));
        assert!(
            (1_000_000..4_000_000).contains(&png.len()),
            "{} bytes",
            png.len()
        );
        let odd = stored_png(3, 70_000);
        assert_eq!(image::load_from_memory(&odd).unwrap().height(), 70_000);
        let webp = photo(256, 128, ImageKind::Webp).unwrap();
        assert_eq!(&webp[..4], b"RIFF");
        assert_eq!(&webp[8..12], b"WEBP");
        assert_eq!(photo_size(4096, 1024), (2048, 512));
    }

    #[test]
    fn glb_is_a_gltf_binary() {
        let g = glb();
        assert_eq!(&g[..4], b"glTF");
        assert_eq!(u32::from_le_bytes([g[4], g[5], g[6], g[7]]), 2);
        assert_eq!(
            u32::from_le_bytes([g[8], g[9], g[10], g[11]]) as usize,
            g.len()
        );
        assert_eq!(&g[16..20], b"JSON");
        assert!(g.len() >= GLB_BYTES - 1024);
        assert!(svg(100, 100).len() > 30_000);
    }
}
