//! The per-provider inflight limiter on Redis: per scope a sorted set of lease id → expiry.
//! Acquire and release are single Lua scripts, so two finalizers releasing the same lease can
//! never free two slots, and a crashed holder's lease expires on its own. Time comes from the
//! lifecycle's clock (passed to the scripts), like every other port.

use crate::config::AwsSetupError;
use async_trait::async_trait;
use executor_lifecycle::{Clock, InflightLimiter, StoreError};
use redis::Script;
use redis::aio::ConnectionManager;
use std::sync::Arc;

const ACQUIRE: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
  return 1
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
  return 1
end
return 0
"#;

const INFLIGHT: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
"#;

/// Redis limiter.
pub struct RedisLimiter {
    conn: ConnectionManager,
    clock: Arc<dyn Clock>,
    acquire: Script,
    inflight: Script,
}

fn err(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn key(scope: &str) -> String {
    format!("executor:inflight:{scope}")
}

impl RedisLimiter {
    /// Connects (and pings) Redis: `redis://` in the clear, `rediss://` over TLS (rustls) with
    /// the system's roots, or with the PEM CA bundle at `EXECUTOR_REDIS_CA_FILE` (a private
    /// CA; the test suite's self-signed server).
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<RedisLimiter, AwsSetupError> {
        let ca = match std::env::var("EXECUTOR_REDIS_CA_FILE") {
            Ok(path) if !path.is_empty() => Some(
                std::fs::read(&path)
                    .map_err(|e| AwsSetupError(format!("EXECUTOR_REDIS_CA_FILE {path}: {e}")))?,
            ),
            _ => None,
        };
        RedisLimiter::connect_with_ca(url, ca, clock).await
    }

    /// As [`RedisLimiter::connect`], trusting `ca_pem` (PEM) for `rediss://` when given.
    pub async fn connect_with_ca(
        url: &str,
        ca_pem: Option<Vec<u8>>,
        clock: Arc<dyn Clock>,
    ) -> Result<RedisLimiter, AwsSetupError> {
        let shown = url.split('@').next_back().unwrap_or(url);
        let fail =
            |e: redis::RedisError| AwsSetupError(format!("Redis at {shown} not reachable: {e}"));
        let client = match ca_pem {
            Some(root_cert) if url.starts_with("rediss://") => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            ),
            _ => redis::Client::open(url),
        }
        .map_err(fail)?;
        let mut conn = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            ConnectionManager::new(client),
        )
        .await
        .map_err(|_| AwsSetupError(format!("Redis at {shown} not reachable: timed out")))?
        .map_err(fail)?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(fail)?;
        Ok(RedisLimiter {
            conn,
            clock,
            acquire: Script::new(ACQUIRE),
            inflight: Script::new(INFLIGHT),
        })
    }
}

#[async_trait]
impl InflightLimiter for RedisLimiter {
    async fn acquire(
        &self,
        scope: &str,
        lease_id: &str,
        capacity: u32,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let mut conn = self.conn.clone();
        let granted: i64 = self
            .acquire
            .key(key(scope))
            .arg(now)
            .arg(lease_id)
            .arg(capacity)
            .arg(now + ttl_ms as i64)
            .invoke_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(granted == 1)
    }

    async fn release(&self, scope: &str, lease_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("ZREM")
            .arg(key(scope))
            .arg(lease_id)
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn inflight(&self, scope: &str) -> Result<u32, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .inflight
            .key(key(scope))
            .arg(self.clock.now_ms())
            .invoke_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(n.max(0) as u32)
    }
}
