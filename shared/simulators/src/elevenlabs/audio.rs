//! Stub audio for the ElevenLabs simulator: silent but well-framed bytes whose size follows
//! the text length, so clients can estimate the duration from the bytes as they would for
//! real speech (about 15 characters per second). MP3 is a run of valid MPEG audio frames
//! (header, e.g. `FF FB 90 64`, then zeros: silence); PCM, µ-law and A-law are raw silent
//! samples; Opus is an `OggS`-tagged stub of the right size, not playable.

/// Characters of text spoken per second of audio.
pub const CHARS_PER_SECOND: f64 = 15.0;

/// An `output_format` such as `mp3_44100_128`, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// MPEG-1/2 Layer III at a sample rate (Hz) and bitrate (kbit/s).
    Mp3 { rate: u32, kbps: u32 },
    /// 16-bit little-endian mono PCM at a sample rate.
    Pcm { rate: u32 },
    /// 8 kHz µ-law.
    Ulaw,
    /// 8 kHz A-law.
    Alaw,
    /// Opus at 48 kHz and a bitrate (kbit/s).
    Opus { kbps: u32 },
}

/// MPEG-1 Layer III bitrates (kbit/s) by header index.
const MPEG1_KBPS: [u32; 15] = [
    0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
/// MPEG-2 Layer III bitrates (kbit/s) by header index.
const MPEG2_KBPS: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

impl Format {
    /// Parses an `output_format`; `None` when it is not one ElevenLabs offers.
    pub fn parse(name: &str) -> Option<Format> {
        let mut it = name.split('_');
        let kind = it.next()?;
        let nums: Vec<u32> = it.map(|n| n.parse().ok()).collect::<Option<_>>()?;
        let format = match (kind, nums.as_slice()) {
            ("mp3", [rate, kbps]) => Format::Mp3 {
                rate: *rate,
                kbps: *kbps,
            },
            ("pcm", [rate]) => Format::Pcm { rate: *rate },
            ("ulaw", [8000]) => Format::Ulaw,
            ("alaw", [8000]) => Format::Alaw,
            ("opus", [48000, kbps]) => Format::Opus { kbps: *kbps },
            _ => return None,
        };
        format.valid().then_some(format)
    }

    fn valid(self) -> bool {
        match self {
            Format::Mp3 { rate, kbps } => mpeg_indices(rate, kbps).is_some(),
            Format::Pcm { rate } => {
                matches!(rate, 8000 | 16000 | 22050 | 24000 | 32000 | 44100 | 48000)
            }
            Format::Ulaw | Format::Alaw => true,
            Format::Opus { kbps } => matches!(kbps, 32 | 64 | 96 | 128 | 192),
        }
    }

    /// The `content-type` of the audio.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Mp3 { .. } => "audio/mpeg",
            Format::Pcm { .. } => "audio/pcm",
            Format::Ulaw => "audio/basic",
            Format::Alaw => "audio/alaw",
            Format::Opus { .. } => "audio/opus",
        }
    }

    /// Silent audio lasting `seconds`.
    pub fn render(self, seconds: f64) -> Vec<u8> {
        let bytes_for = |per_second: f64| (per_second * seconds).ceil() as usize;
        match self {
            Format::Mp3 { rate, kbps } => mp3(rate, kbps, seconds),
            Format::Pcm { rate } => vec![0; bytes_for(f64::from(rate) * 2.0)],
            Format::Ulaw => vec![0xFF; bytes_for(8000.0)],
            Format::Alaw => vec![0xD5; bytes_for(8000.0)],
            Format::Opus { kbps } => {
                let mut v = b"OggS".to_vec();
                v.resize(bytes_for(f64::from(kbps) * 125.0).max(4), 0);
                v
            }
        }
    }
}

/// Seconds of speech for `text`.
pub fn duration_seconds(text: &str) -> f64 {
    (text.chars().count() as f64 / CHARS_PER_SECOND).max(0.2)
}

/// `(mpeg1, sample rate index, bitrate index)` of a rate and bitrate, if MPEG can carry them.
fn mpeg_indices(rate: u32, kbps: u32) -> Option<(bool, u8, u8)> {
    let (mpeg1, rate_index) = match rate {
        44100 => (true, 0),
        48000 => (true, 1),
        32000 => (true, 2),
        22050 => (false, 0),
        24000 => (false, 1),
        16000 => (false, 2),
        _ => return None,
    };
    let table = if mpeg1 { &MPEG1_KBPS } else { &MPEG2_KBPS };
    let bitrate_index = table.iter().position(|k| *k == kbps && kbps > 0)?;
    Some((mpeg1, rate_index, u8::try_from(bitrate_index).ok()?))
}

/// Silent MPEG Layer III frames covering `seconds` (at least one frame).
fn mp3(rate: u32, kbps: u32, seconds: f64) -> Vec<u8> {
    let Some((mpeg1, rate_index, bitrate_index)) = mpeg_indices(rate, kbps) else {
        return Vec::new();
    };
    // Sync word, version (MPEG-1 `11` / MPEG-2 `10`), layer III, no CRC.
    let b1 = if mpeg1 { 0xFB } else { 0xF3 };
    let b2 = (bitrate_index << 4) | (rate_index << 2);
    // Joint stereo, original.
    let header = [0xFF, b1, b2, 0x64];
    let (samples, coefficient) = if mpeg1 { (1152, 144) } else { (576, 72) };
    let frame_len = (coefficient * kbps * 1000 / rate) as usize;
    let frames = ((seconds * f64::from(rate) / f64::from(samples)).ceil() as usize).max(1);
    let mut out = Vec::with_capacity(frames * frame_len);
    for _ in 0..frames {
        out.extend_from_slice(&header);
        out.resize(out.len() + frame_len.saturating_sub(header.len()), 0);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_formats() {
        assert_eq!(
            Format::parse("mp3_44100_128"),
            Some(Format::Mp3 {
                rate: 44100,
                kbps: 128
            })
        );
        assert_eq!(
            Format::parse("pcm_24000"),
            Some(Format::Pcm { rate: 24000 })
        );
        assert_eq!(Format::parse("ulaw_8000"), Some(Format::Ulaw));
        assert_eq!(Format::parse("mp3_44100_129"), None);
        assert_eq!(Format::parse("wav"), None);
        assert_eq!(Format::parse("mp3_44100"), None);
    }

    #[test]
    fn mp3_frames_follow_the_duration() {
        let one_second = Format::parse("mp3_44100_128").unwrap().render(1.0);
        // 39 frames of 417 bytes (1152 samples at 44.1 kHz each).
        assert_eq!(one_second.len(), 39 * 417);
        assert_eq!(&one_second[..4], &[0xFF, 0xFB, 0x90, 0x64]);
        assert_eq!(&one_second[417..421], &[0xFF, 0xFB, 0x90, 0x64]);
        let low = Format::parse("mp3_22050_32").unwrap().render(1.0);
        assert_eq!(&low[..3], &[0xFF, 0xF3, 0x40]);
        assert!(Format::parse("mp3_44100_128").unwrap().render(4.0).len() > one_second.len() * 3);
        assert_eq!(Format::Pcm { rate: 16000 }.render(0.5).len(), 16000);
    }
}
