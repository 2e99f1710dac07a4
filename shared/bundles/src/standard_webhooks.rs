//! Standard Webhooks (https://www.standardwebhooks.com): HMAC-SHA256 over
//! `{id}.{timestamp}.{body}` with the base64 key of a `whsec_` secret; signatures are
//! space-separated `v1,<base64>` entries. Used to verify Replicate's callbacks and to sign our
//! own outbound customer webhooks.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Accepted clock difference between the sender's timestamp and ours (seconds).
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// Why verification failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is missing.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The secret is not a valid `whsec_` base64 key.
    #[error("invalid signing secret")]
    BadSecret,
    /// The timestamp is not a number or too far from now.
    #[error("timestamp outside the tolerance")]
    Timestamp,
    /// No signature matched.
    #[error("no matching signature")]
    Mismatch,
}

fn key(secret: &str) -> Result<Vec<u8>, VerifyError> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| VerifyError::BadSecret)
}

/// The `v1,<base64>` signature of a message.
pub fn sign(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, VerifyError> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key(secret)?).map_err(|_| VerifyError::BadSecret)?;
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Verifies headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`) against a body.
pub fn verify(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_seconds: i64,
) -> Result<String, VerifyError> {
    let get = |name: &'static str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .ok_or(VerifyError::MissingHeader(name))
    };
    let id = get("webhook-id")?;
    let ts: i64 = get("webhook-timestamp")?
        .trim()
        .parse()
        .map_err(|_| VerifyError::Timestamp)?;
    if (now_seconds - ts).abs() > TOLERANCE_SECONDS {
        return Err(VerifyError::Timestamp);
    }
    let expected = sign(secret, id, ts, body)?;
    let expected_sig = expected.split_once(',').map(|(_, s)| s).unwrap_or_default();
    for candidate in get("webhook-signature")?.split_whitespace() {
        if let Some(("v1", sig)) = candidate.split_once(',')
            && bool::from(sig.as_bytes().ct_eq(expected_sig.as_bytes()))
        {
            return Ok(id.to_string());
        }
    }
    Err(VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // The published test vector of the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(sig: &str) -> Vec<(String, String)> {
        vec![
            ("webhook-id".into(), ID.into()),
            ("webhook-timestamp".into(), TS.to_string()),
            ("webhook-signature".into(), sig.into()),
        ]
    }

    #[test]
    fn published_vector_signs_and_verifies() {
        assert_eq!(sign(SECRET, ID, TS, BODY).unwrap(), SIG);
        assert_eq!(
            verify(SECRET, &headers(&format!("v1,bogus {SIG}")), BODY, TS + 10).unwrap(),
            ID
        );
    }

    #[test]
    fn tampering_staleness_and_missing_headers_fail() {
        assert_eq!(
            verify(SECRET, &headers(SIG), b"{\"test\": 1}", TS),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, &headers(SIG), BODY, TS + 301),
            Err(VerifyError::Timestamp)
        );
        assert_eq!(
            verify(SECRET, &headers(SIG)[..2], BODY, TS),
            Err(VerifyError::MissingHeader("webhook-signature"))
        );
    }
}
