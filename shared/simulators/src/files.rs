//! Generated media served by the simulator itself: real-size PNGs (megabytes, see
//! [`crate::media`]; [`png`] still makes tiny ones for callers that want them) and real-size MP4 videos
//! (a few megabytes: what the video providers serve by URL), stored per job and served at
//! `{provider base}/files/{id}/{name}` without authentication, like the providers' CDNs
//! (`replicate.delivery`, fal media, Runway's signed URLs).

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
    /// Pixel width.
    pub width: u32,
    /// Pixel height.
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

    /// Stores bytes shared with other jobs (a cached video: one copy, however many jobs).
    pub fn put_shared(
        &self,
        base: &str,
        id: &str,
        name: &str,
        content_type: &'static str,
        bytes: Bytes,
        dims: (u32, u32),
    ) -> FileRef {
        let size = bytes.len();
        self.files
            .lock()
            .insert((id.to_owned(), name.to_owned()), (content_type, bytes));
        FileRef {
            url: format!("{base}/files/{id}/{name}"),
            file_name: name.to_owned(),
            content_type,
            width: dims.0,
            height: dims.1,
            size,
        }
    }

    /// Generates and stores `count` videos of `seconds` at `size` (0x0: 1280x720), named
    /// `{stem}-{i}.mp4`: real MP4 files of a real video's size ([`video_mp4`]).
    pub fn generate_video(
        &self,
        base: &str,
        id: &str,
        stem: &str,
        count: usize,
        size: (u32, u32),
        seconds: u32,
    ) -> Result<Vec<FileRef>, image::ImageError> {
        let (w, h) = video_size(size);
        let bytes = video_mp4(seconds, w, h)?;
        Ok((0..count)
            .map(|i| {
                self.put_shared(
                    base,
                    id,
                    &format!("{stem}-{i}.mp4"),
                    "video/mp4",
                    bytes.clone(),
                    (w, h),
                )
            })
            .collect())
    }

    /// Generates and stores `count` outputs of `kind` named `{stem}-{i}.{ext}` (videos of
    /// [`DEFAULT_VIDEO_SECONDS`]).
    pub fn generate(
        &self,
        base: &str,
        id: &str,
        stem: &str,
        kind: MediaKind,
        count: usize,
        size: (u32, u32),
    ) -> Result<Vec<FileRef>, image::ImageError> {
        (0..count)
            .map(|i| {
                Ok(match kind {
                    MediaKind::Video => {
                        let (vw, vh) = video_size(size);
                        self.put_shared(
                            base,
                            id,
                            &format!("{stem}-{i}.mp4"),
                            "video/mp4",
                            video_mp4(DEFAULT_VIDEO_SECONDS, vw, vh)?,
                            (vw, vh),
                        )
                    }
                    _ => {
                        // Real size: a 1024x1024 generated PNG weighs megabytes.
                        let (w, h) = crate::media::photo_size(size.0.max(1), size.1.max(1));
                        self.put_shared(
                            base,
                            id,
                            &format!("{stem}-{i}.png"),
                            "image/png",
                            crate::media::photo(w, h, crate::media::ImageKind::Png)?,
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

/// A PNG at the size a real provider returns (a 1024×1024 photo is a megabyte or more):
/// [`crate::media::stored_png`], uncompressed (≈ 1 MB at 1024×1024). Made once per size and
/// shared, since making megabytes for every simulated request would dominate the suites' time.
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
    let png = Arc::new(crate::media::stored_png(key.0, key.1));
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

/// Length of a video when the request names none.
pub const DEFAULT_VIDEO_SECONDS: u32 = 5;

/// Frames per second of the generated videos.
pub const VIDEO_FPS: u32 = 24;

/// Bytes per second of the generated videos: ≈ 6 Mbit/s, what a 720p H.264 clip from a video
/// model runs at (a 5 s Runway or Luma clip is a few megabytes).
pub const VIDEO_BYTES_PER_SECOND: usize = 750_000;

/// The pixel size of a video asked for as `size` (a ratio such as 1280x720, or 0x0), even and
/// at most 1920 on its longer side.
pub fn video_size(size: (u32, u32)) -> (u32, u32) {
    let (w, h) = if size.0 == 0 || size.1 == 0 {
        (1280, 720)
    } else {
        size
    };
    let longest = w.max(h);
    let (w, h) = if longest > 1920 {
        let scale = |v: u32| u32::try_from(u64::from(v) * 1920 / u64::from(longest)).unwrap_or(2);
        (scale(w), scale(h))
    } else {
        (w, h)
    };
    ((w.max(2) / 2) * 2, (h.max(2) / 2) * 2)
}

/// A value made once per key, by whoever asks first; later askers (and concurrent ones) wait
/// for it instead of making it again.
type Once<K, V> = Mutex<HashMap<K, Arc<std::sync::OnceLock<V>>>>;

fn once<K: std::hash::Hash + Eq + Copy, V: Clone, E>(
    table: &Once<K, V>,
    key: K,
    make: impl FnOnce() -> Result<V, E>,
) -> Result<V, E> {
    let cell = table.lock().entry(key).or_default().clone();
    if let Some(v) = cell.get() {
        return Ok(v.clone());
    }
    // Concurrent first askers may each make it; one value wins and every caller gets it.
    let v = make()?;
    Ok(cell.get_or_init(|| v).clone())
}

/// Longest side of the coded frames: a video is presented at its requested size and coded at
/// most this large (encoding full-size pictures would cost a debug build hundreds of ms per
/// size; the bytes per second, which the pipeline sees, are those of a real clip either way).
pub const VIDEO_CODED_MAX_SIDE: u32 = 640;

/// A real MP4 of `seconds` presented at `width`x`height`, 24 frames per second, ≈ 750 KB per
/// second:
/// `ftyp`, then `moov` (one video track: `mvhd`, `tkhd`, `mdhd`, `hdlr vide`, `vmhd`, `dref`,
/// and a sample table `stsd`/`stts`/`stsc`/`stsz`/`stco` that indexes every frame), then
/// `mdat` with the frames. The frames are Motion JPEG (sample entry `mp4v`, `esds` object
/// type 0x6C, ISO/IEC 14496-1): real JPEG images a decoder reads, coded at most
/// [`VIDEO_CODED_MAX_SIDE`] on the longer side and presented (`tkhd`) at the requested size —
/// one picture per size, each frame padded with its own comment segment to the bitrate of a
/// real clip. Made once per
/// (seconds, size) and shared ([`Bytes`] clones share one copy), since encoding megabytes for
/// every simulated job would dominate the suites' time and memory.
pub fn video_mp4(seconds: u32, width: u32, height: u32) -> Result<Bytes, image::ImageError> {
    static MADE: std::sync::OnceLock<Once<(u32, u32, u32), Bytes>> = std::sync::OnceLock::new();
    let key = (
        seconds.clamp(1, 60),
        width.clamp(2, 1920),
        height.clamp(2, 1920),
    );
    once(MADE.get_or_init(Default::default), key, || {
        let (seconds, width, height) = key;
        let coded = coded_size(width, height);
        let picture = video_picture(coded.0, coded.1)?;
        let per_frame = VIDEO_BYTES_PER_SECOND / VIDEO_FPS as usize;
        let frames: Vec<Vec<u8>> = (0..seconds * VIDEO_FPS)
            .map(|i| padded(&picture, i, per_frame))
            .collect();
        let samples: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        Ok(Bytes::from(mp4_file(
            &samples,
            coded,
            (width, height),
            VIDEO_FPS,
        )))
    })
}

/// The coded size of frames presented at `width`x`height`: the same ratio, even, at most
/// [`VIDEO_CODED_MAX_SIDE`] on the longer side.
pub fn coded_size(width: u32, height: u32) -> (u32, u32) {
    let longest = width.max(height).max(1);
    let scale = |v: u32| {
        if longest <= VIDEO_CODED_MAX_SIDE {
            v
        } else {
            u32::try_from(u64::from(v) * u64::from(VIDEO_CODED_MAX_SIDE) / u64::from(longest))
                .unwrap_or(2)
        }
    };
    (
        (scale(width).max(2) / 2) * 2,
        (scale(height).max(2) / 2) * 2,
    )
}

/// The JPEG picture of a video's frames (quality 50, a gradient), made once per size.
fn video_picture(width: u32, height: u32) -> Result<Arc<Vec<u8>>, image::ImageError> {
    type Pictures = Once<(u32, u32), Arc<Vec<u8>>>;
    static MADE: std::sync::OnceLock<Pictures> = std::sync::OnceLock::new();
    once(MADE.get_or_init(Default::default), (width, height), || {
        let img = RgbImage::from_fn(width, height, |x, y| {
            let fx = u8::try_from(x * 255 / width.max(1)).unwrap_or(255);
            let fy = u8::try_from(y * 255 / height.max(1)).unwrap_or(255);
            Rgb([fx, fy, 96])
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 50).encode_image(&img)?;
        Ok(Arc::new(jpeg))
    })
}

/// Frame `index`: the picture with COM segments (which decoders skip) of pseudo-random bytes
/// after its JFIF header, up to `target` bytes.
fn padded(jpeg: &[u8], index: u32, target: usize) -> Vec<u8> {
    let mut pad = Vec::new();
    let mut missing = target.saturating_sub(jpeg.len());
    let mut state: u32 = 0x2545_F491 ^ index.wrapping_mul(0x9E37_79B9);
    while missing > 4 {
        let n = (missing - 4).min(65_533);
        pad.extend_from_slice(&[0xFF, 0xFE]);
        pad.extend_from_slice(&u16::try_from(n + 2).unwrap_or(u16::MAX).to_be_bytes());
        let start = pad.len();
        pad.resize(start + n, 0);
        for chunk in pad[start..].chunks_mut(4) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        missing = missing.saturating_sub(n + 4);
    }
    // After the JFIF APP0 segment when there is one (it must follow SOI), else after SOI.
    let at = if jpeg.get(2..4) == Some(&[0xFF, 0xE0][..]) {
        4 + jpeg
            .get(4..6)
            .map_or(0, |l| usize::from(u16::from_be_bytes([l[0], l[1]])))
    } else {
        2
    };
    let mut out = Vec::with_capacity(jpeg.len() + pad.len());
    out.extend_from_slice(&jpeg[..at]);
    out.extend_from_slice(&pad);
    out.extend_from_slice(&jpeg[at..]);
    out
}

/// A box: size, type, payload.
fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + payload.len());
    b.extend_from_slice(
        &u32::try_from(8 + payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    b.extend_from_slice(kind);
    b.extend_from_slice(payload);
    b
}

/// A full box: version 0, `flags`, payload.
fn full_box(kind: &[u8; 4], flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + payload.len());
    p.extend_from_slice(&(flags & 0x00FF_FFFF).to_be_bytes());
    p.extend_from_slice(payload);
    mp4_box(kind, &p)
}

/// An MPEG-4 descriptor (ISO/IEC 14496-1): tag, length (one byte: these are short), payload.
fn descriptor(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut d = vec![tag, u8::try_from(payload.len()).unwrap_or(u8::MAX)];
    d.extend_from_slice(payload);
    d
}

/// The unity matrix of `mvhd` and `tkhd`.
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

fn be32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn be16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}

/// An MP4 file of one video track holding `samples` (Motion JPEG frames of `coded` size) in
/// one chunk, presented at `shown` size, with the `moov` before the `mdat` (playable while
/// downloading).
fn mp4_file(samples: &[&[u8]], coded: (u32, u32), shown: (u32, u32), fps: u32) -> Vec<u8> {
    let count = u32::try_from(samples.len()).unwrap_or(u32::MAX);
    let duration_ms = count * 1000 / fps.max(1);
    let mut ftyp = Vec::new();
    ftyp.extend_from_slice(b"isom");
    be32(&mut ftyp, 0x200);
    ftyp.extend_from_slice(b"isomiso2mp41");
    let ftyp = mp4_box(b"ftyp", &ftyp);

    let mut mvhd = Vec::new();
    be32(&mut mvhd, 0); // creation time
    be32(&mut mvhd, 0); // modification time
    be32(&mut mvhd, 1000); // timescale: ms
    be32(&mut mvhd, duration_ms);
    be32(&mut mvhd, 0x0001_0000); // rate 1.0
    be16(&mut mvhd, 0x0100); // volume 1.0
    mvhd.extend_from_slice(&[0; 10]);
    MATRIX.iter().for_each(|m| be32(&mut mvhd, *m));
    mvhd.extend_from_slice(&[0; 24]); // pre_defined
    be32(&mut mvhd, 2); // next track id
    let mvhd = full_box(b"mvhd", 0, &mvhd);

    let mut tkhd = Vec::new();
    be32(&mut tkhd, 0);
    be32(&mut tkhd, 0);
    be32(&mut tkhd, 1); // track id
    be32(&mut tkhd, 0);
    be32(&mut tkhd, duration_ms);
    tkhd.extend_from_slice(&[0; 8]);
    be16(&mut tkhd, 0); // layer
    be16(&mut tkhd, 0); // alternate group
    be16(&mut tkhd, 0); // volume (video)
    be16(&mut tkhd, 0);
    MATRIX.iter().for_each(|m| be32(&mut tkhd, *m));
    be32(&mut tkhd, shown.0 << 16);
    be32(&mut tkhd, shown.1 << 16);
    let tkhd = full_box(b"tkhd", 3, &tkhd); // enabled, in movie

    let mut mdhd = Vec::new();
    be32(&mut mdhd, 0);
    be32(&mut mdhd, 0);
    be32(&mut mdhd, fps); // timescale: one tick per frame
    be32(&mut mdhd, count);
    be16(&mut mdhd, 0x55C4); // language "und"
    be16(&mut mdhd, 0);
    let mdhd = full_box(b"mdhd", 0, &mdhd);

    let mut hdlr = Vec::new();
    be32(&mut hdlr, 0);
    hdlr.extend_from_slice(b"vide");
    hdlr.extend_from_slice(&[0; 12]);
    hdlr.extend_from_slice(b"VideoHandler\0");
    let hdlr = full_box(b"hdlr", 0, &hdlr);

    let vmhd = full_box(b"vmhd", 1, &[0; 8]);
    let mut dref = Vec::new();
    be32(&mut dref, 1);
    dref.extend_from_slice(&full_box(b"url ", 1, &[])); // self-contained
    let dinf = mp4_box(b"dinf", &full_box(b"dref", 0, &dref));

    // Sample entry `mp4v` with an `esds` naming JPEG (object type 0x6C, visual stream).
    let mut dec = vec![0x6C, (0x04 << 2) | 1];
    let max_frame = samples.iter().map(|s| s.len()).max().unwrap_or(0);
    dec.extend_from_slice(&u32::try_from(max_frame).unwrap_or(0).to_be_bytes()[1..]);
    let bitrate = u32::try_from(samples.iter().map(|s| s.len()).sum::<usize>() * 8)
        .unwrap_or(u32::MAX)
        / (duration_ms / 1000).max(1);
    be32(&mut dec, bitrate); // max bitrate
    be32(&mut dec, bitrate); // average bitrate
    let mut es = Vec::new();
    be16(&mut es, 1); // ES id
    es.push(0); // flags
    es.extend_from_slice(&descriptor(0x04, &dec));
    es.extend_from_slice(&descriptor(0x06, &[0x02]));
    let esds = full_box(b"esds", 0, &descriptor(0x03, &es));
    let mut entry = Vec::new();
    entry.extend_from_slice(&[0; 6]);
    be16(&mut entry, 1); // data reference index
    entry.extend_from_slice(&[0; 16]);
    be16(&mut entry, u16::try_from(coded.0).unwrap_or(u16::MAX));
    be16(&mut entry, u16::try_from(coded.1).unwrap_or(u16::MAX));
    be32(&mut entry, 0x0048_0000); // 72 dpi
    be32(&mut entry, 0x0048_0000);
    be32(&mut entry, 0);
    be16(&mut entry, 1); // frames per sample
    let mut name = [0u8; 32];
    let label = b"Motion JPEG";
    name[0] = u8::try_from(label.len()).unwrap_or(0);
    name[1..=label.len()].copy_from_slice(label);
    entry.extend_from_slice(&name);
    be16(&mut entry, 0x0018); // depth
    be16(&mut entry, 0xFFFF);
    entry.extend_from_slice(&esds);
    let mut stsd = Vec::new();
    be32(&mut stsd, 1);
    stsd.extend_from_slice(&mp4_box(b"mp4v", &entry));
    let stsd = full_box(b"stsd", 0, &stsd);

    let mut stts = Vec::new();
    be32(&mut stts, 1);
    be32(&mut stts, count);
    be32(&mut stts, 1);
    let stts = full_box(b"stts", 0, &stts);
    let mut stsc = Vec::new();
    be32(&mut stsc, 1);
    be32(&mut stsc, 1); // first chunk
    be32(&mut stsc, count); // samples per chunk
    be32(&mut stsc, 1); // sample description
    let stsc = full_box(b"stsc", 0, &stsc);
    let mut stsz = Vec::new();
    be32(&mut stsz, 0);
    be32(&mut stsz, count);
    samples
        .iter()
        .for_each(|s| be32(&mut stsz, u32::try_from(s.len()).unwrap_or(0)));
    let stsz = full_box(b"stsz", 0, &stsz);

    let moov_with = |offset: u32| {
        let mut stco = Vec::new();
        be32(&mut stco, 1);
        be32(&mut stco, offset);
        let stco = full_box(b"stco", 0, &stco);
        let stbl = mp4_box(b"stbl", &[&stsd[..], &stts, &stsc, &stsz, &stco].concat());
        let minf = mp4_box(b"minf", &[&vmhd[..], &dinf, &stbl].concat());
        let mdia = mp4_box(b"mdia", &[&mdhd[..], &hdlr, &minf].concat());
        let trak = mp4_box(b"trak", &[&tkhd[..], &mdia].concat());
        mp4_box(b"moov", &[&mvhd[..], &trak].concat())
    };
    // The chunk offset does not change the moov's length: measure it, then write it.
    let moov_len = moov_with(0).len();
    let offset = u32::try_from(ftyp.len() + moov_len + 8).unwrap_or(u32::MAX);
    let moov = moov_with(offset);
    let payload: usize = samples.iter().map(|s| s.len()).sum();
    let mut out = Vec::with_capacity(ftyp.len() + moov.len() + 8 + payload);
    out.extend_from_slice(&ftyp);
    out.extend_from_slice(&moov);
    out.extend_from_slice(&u32::try_from(8 + payload).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(b"mdat");
    samples.iter().for_each(|s| out.extend_from_slice(s));
    out
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
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
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

    /// The boxes of an ISO BMFF byte range: (type, payload).
    fn boxes(data: &[u8]) -> Vec<(String, &[u8])> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 8 <= data.len() {
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            assert!(
                size >= 8 && at + size <= data.len(),
                "box at {at} of size {size}"
            );
            let kind = String::from_utf8(data[at + 4..at + 8].to_vec()).unwrap();
            out.push((kind, &data[at + 8..at + size]));
            at += size;
        }
        assert_eq!(at, data.len(), "boxes end where the data ends");
        out
    }

    fn child<'a>(data: &'a [u8], kind: &str) -> &'a [u8] {
        boxes(data)
            .into_iter()
            .find(|(k, _)| k == kind)
            .unwrap_or_else(|| panic!("no {kind} box"))
            .1
    }

    fn u32_at(data: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(data[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn videos_are_real_mp4s_of_real_size() {
        let video = video_mp4(5, 1280, 720).unwrap();
        assert!(
            (3_000_000..5_000_000).contains(&video.len()),
            "{} bytes",
            video.len()
        );
        let top = boxes(&video);
        assert_eq!(
            top.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["ftyp", "moov", "mdat"]
        );
        assert_eq!(&top[0].1[..4], b"isom");
        let moov = top[1].1;
        let mvhd = child(moov, "mvhd");
        assert_eq!((u32_at(mvhd, 12), u32_at(mvhd, 16)), (1000, 5000), "5 s");
        let trak = child(moov, "trak");
        let tkhd = child(trak, "tkhd");
        assert_eq!(
            (u32_at(tkhd, 76) >> 16, u32_at(tkhd, 80) >> 16),
            (1280, 720)
        );
        let mdia = child(trak, "mdia");
        assert_eq!(&child(mdia, "hdlr")[8..12], b"vide");
        let stbl = child(child(mdia, "minf"), "stbl");
        let stsd = child(stbl, "stsd");
        assert_eq!(&stsd[12..16], b"mp4v");
        let esds_at = stsd.windows(4).position(|w| w == b"esds").unwrap();
        assert!(
            stsd[esds_at..].windows(2).any(|w| w == [0x04, 0x0D])
                && stsd[esds_at..].contains(&0x6C),
            "esds: a decoder config for JPEG (object type 0x6C)"
        );
        let stsz = child(stbl, "stsz");
        let count = u32_at(stsz, 8) as usize;
        assert_eq!(count, 5 * VIDEO_FPS as usize);
        let sizes: Vec<usize> = (0..count)
            .map(|i| u32_at(stsz, 12 + 4 * i) as usize)
            .collect();
        let stco = child(stbl, "stco");
        let offset = u32_at(stco, 8) as usize;
        let mdat = top[2].1;
        assert_eq!(
            offset,
            video.len() - mdat.len(),
            "the chunk starts the mdat payload"
        );
        assert_eq!(
            sizes.iter().sum::<usize>(),
            mdat.len(),
            "the samples fill the mdat"
        );
        let mut at = offset;
        for size in &sizes {
            let frame = &video[at..at + size];
            assert_eq!(&frame[..2], [0xFF, 0xD8], "JPEG SOI");
            assert_eq!(&frame[size - 2..], [0xFF, 0xD9], "JPEG EOI");
            at += size;
        }
        let first = image::load_from_memory_with_format(
            &video[offset..offset + sizes[0]],
            ImageFormat::Jpeg,
        )
        .unwrap();
        assert_eq!(
            (first.width(), first.height()),
            (640, 360),
            "coded at most 640 wide"
        );
        assert_eq!(
            u16::from_be_bytes([stsd[40], stsd[41]]),
            640,
            "stsd: the coded width"
        );
        // Made once: the same bytes for the next job, not a copy.
        assert_eq!(video_mp4(5, 1280, 720).unwrap().as_ptr(), video.as_ptr());
        let longer = video_mp4(10, 1280, 720).unwrap();
        assert!(
            longer.len() > 2 * video.len() - 100_000,
            "{} bytes",
            longer.len()
        );
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
