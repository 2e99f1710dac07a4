//! Wall-clock formatting (RFC 3339 without a date crate) and identifier minting in the
//! shapes the providers use (Replicate-style lowercase ids, UUIDs, OpenAI request ids).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `t` as RFC 3339 UTC with `frac_digits` (0..=9) fractional digits, e.g.
/// `2024-06-27T19:49:32.334Z`.
pub fn rfc3339(t: SystemTime, frac_digits: u32) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    let rem = secs % 86_400;
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let digits = frac_digits.min(9);
    if digits > 0 {
        let frac = since.subsec_nanos() / 10u32.pow(9 - digits);
        out.push_str(&format!(".{frac:0width$}", width = digits as usize));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// A 26-character lowercase id like Replicate's (`ufawqhfynnddngldkgtslldrkq` style).
pub fn lower_id() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

/// A random version-4 UUID string.
pub fn uuid_v4() -> String {
    let raw: u128 = rand::random();
    let v = (raw & !(0xF << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// An OpenAI-style request id (`req_` + 32 hex digits).
pub fn request_id() -> String {
    format!("req_{:032x}", rand::random::<u128>())
}

/// A Standard Webhooks message id (`msg_<ulid>`).
pub fn message_id() -> String {
    format!("msg_{}", ulid::Ulid::new())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn formats_known_instants() {
        let t = UNIX_EPOCH + Duration::new(1_719_517_772, 334_000_000);
        assert_eq!(rfc3339(t, 3), "2024-06-27T19:49:32.334Z");
        assert_eq!(rfc3339(UNIX_EPOCH, 0), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap, 0), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn uuid_has_version_and_variant() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }
}
