//! Bearer API keys → tenants. Keys are stored hashed (SHA-256); the directory is a port so
//! the embedded and AWS backends keep keys where they keep everything else.

use crate::problem::Problem;
use async_trait::async_trait;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Looks up the tenant of a hashed API key.
#[async_trait]
pub trait TenantDirectory: Send + Sync {
    /// The tenant owning the key with this hash.
    async fn tenant_for_key_hash(&self, key_hash: &str) -> Option<String>;
}

/// Hex SHA-256 of an API key.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The rule tenant names follow, as shown in errors.
pub const TENANT_NAME_RULE: &str = "1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit (^[a-z0-9][a-z0-9_-]{0,62}$; no '#', the key delimiter)";

/// Checks a tenant name: `^[a-z0-9][a-z0-9_-]{0,62}$`. Tenants appear inside store keys
/// (`idem#{tenant}#{key}`) and share the `by-tenant` index with the reserved API-key
/// partition, so `#` and anything outside this charset is refused wherever a tenant is made.
pub fn validate_tenant(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid tenant name {name:?}: use {TENANT_NAME_RULE}"
        ))
    }
}

/// A fixed map of key hashes to tenants (configuration files, tests).
#[derive(Debug, Clone, Default)]
pub struct StaticTenants(pub HashMap<String, String>);

impl StaticTenants {
    /// Adds a plain key for a tenant (stored hashed).
    pub fn with_key(mut self, key: &str, tenant: &str) -> Self {
        self.0.insert(hash_api_key(key), tenant.to_string());
        self
    }
}

#[async_trait]
impl TenantDirectory for StaticTenants {
    async fn tenant_for_key_hash(&self, key_hash: &str) -> Option<String> {
        self.0.get(key_hash).cloned()
    }
}

/// The tenant of a request's `Authorization: Bearer <key>`, or a 401 problem.
pub async fn tenant(headers: &HeaderMap, dir: &dyn TenantDirectory) -> Result<String, Problem> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("missing Authorization: Bearer <api key>"))?
        .to_str()
        .map_err(|_| {
            Problem::unauthorized("Authorization must be visible ASCII: Bearer <api key>")
        })?;
    // The scheme is case-insensitive (RFC 9110, section 11.1): `bearer` and `BEARER` too.
    let key = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Problem::unauthorized("Authorization must be 'Bearer <api key>'"))?;
    dir.tenant_for_key_hash(&hash_api_key(key))
        .await
        .ok_or_else(|| Problem::unauthorized("unknown API key"))
}

/// The tenant of a request, after its API key and its rate limit: 401 for a missing or
/// unknown key, 429 with `Retry-After` when the tenant is over `rate_limit_per_second`.
pub async fn authorize(state: &crate::ApiState, headers: &HeaderMap) -> Result<String, Problem> {
    let t = tenant(headers, state.tenants.as_ref()).await?;
    if let Some(limiter) = &state.rate_limiter
        && let Err(not_until) = limiter.check_key(&t)
    {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Err(Problem::rate_limited(secs.max(1)));
    }
    Ok(t)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::validate_tenant;

    #[test]
    fn tenant_names() {
        for ok in ["acme", "dev", "a", "0", "team_b-2", &"x".repeat(63)] {
            assert!(validate_tenant(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Acme",
            "a#b",
            "-a",
            "_a",
            "a b",
            "é",
            "a.b",
            &"x".repeat(64),
        ] {
            let e = validate_tenant(bad).unwrap_err();
            assert!(!e.contains('\n') && e.contains("a-z0-9"), "{e}");
        }
    }
}
