//! Webhook signatures as the real providers compute them: Standard Webhooks HMAC-SHA256 for
//! Replicate and Ed25519 over `request_id\nuser_id\ntimestamp\nsha256hex(body)` for fal, with
//! the fal public key published as a JWKS.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Errors building a signer.
#[derive(Debug)]
pub enum SigningError {
    /// The `whsec_` secret is not valid base64.
    Secret(base64::DecodeError),
    /// The HMAC key was rejected.
    Key,
}

impl std::fmt::Display for SigningError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigningError::Secret(e) => write!(f, "webhook secret is not whsec_<base64>: {e}"),
            SigningError::Key => f.write_str("invalid HMAC key"),
        }
    }
}

impl std::error::Error for SigningError {}

/// The HMAC key of a Standard Webhooks secret (`whsec_` prefix stripped, base64-decoded).
pub fn decode_whsec(secret: &str) -> Result<Vec<u8>, SigningError> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(b64).map_err(SigningError::Secret)
}

/// `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`.
pub fn standard_webhooks_signature(
    key: &[u8],
    msg_id: &str,
    timestamp: u64,
    body: &[u8],
) -> Result<String, SigningError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| SigningError::Key)?;
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// fal's webhook signer: an Ed25519 key generated at start.
#[derive(Debug)]
pub struct FalSigner {
    key: SigningKey,
}

impl FalSigner {
    /// A fresh random key.
    pub fn generate() -> FalSigner {
        FalSigner {
            key: SigningKey::from_bytes(&rand::random::<[u8; 32]>()),
        }
    }

    /// The raw public key, base64url without padding (the JWK `x`).
    pub fn public_key_b64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes())
    }

    /// The JWKS document served at `/fal/.well-known/jwks.json`.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
                         "kid": "sim-1", "x": self.public_key_b64url()}]})
    }

    /// Hex Ed25519 signature of `request_id\nuser_id\ntimestamp\nsha256hex(body)`.
    pub fn sign(&self, request_id: &str, user_id: &str, timestamp: u64, body: &[u8]) -> String {
        let message = fal_message(request_id, user_id, timestamp, body);
        hex::encode(self.key.sign(message.as_bytes()).to_bytes())
    }
}

/// The message fal signs.
pub fn fal_message(request_id: &str, user_id: &str, timestamp: u64, body: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(body));
    format!("{request_id}\n{user_id}\n{timestamp}\n{digest}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn standard_webhooks_vector() {
        // Vector from the Standard Webhooks reference libraries.
        let key = decode_whsec("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig =
            standard_webhooks_signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body)
                .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn fal_signature_verifies_with_published_key() {
        let signer = FalSigner::generate();
        let sig = signer.sign("req", "user", 7, b"{}");
        let x = URL_SAFE_NO_PAD.decode(signer.public_key_b64url()).unwrap();
        let vk = VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
        let sig = Signature::from_slice(&hex::decode(sig).unwrap()).unwrap();
        vk.verify(fal_message("req", "user", 7, b"{}").as_bytes(), &sig)
            .unwrap();
    }
}
