//! The per-provider inflight limiter on Redis: per scope a sorted set of lease id → expiry.
//! Acquire and release are single Lua scripts, so two finalizers releasing the same lease can
//! never free two slots, and a crashed holder's lease expires on its own. Time comes from the
//! lifecycle's clock (passed to the scripts), like every other port.
//!
//! Cluster mode: ElastiCache Serverless is only available cluster-mode enabled (AWS,
//! "Overall best practices"), and a Redis Cluster answers a command for a key another node
//! owns with `MOVED`. A server that reports `cluster_enabled:1` (`INFO cluster`) is therefore
//! used through the cluster client (slot map, `MOVED`/`ASK` followed), a plain one through a
//! single connection; `EXECUTOR_REDIS_CLUSTER=true|false` forces either. Every script touches
//! only the keys of one scope, and a scope's keys share a hash slot (the `{scope}` hash tag),
//! as AWS asks of Lua scripts ("ensure the keys used in the Lua script belong to the same
//! slot").

use crate::config::AwsSetupError;
use async_trait::async_trait;
use executor_lifecycle::{Clock, InflightLimiter, StoreError};
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, RedisResult, Script, ScriptInvocation};
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

/// How to talk to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    /// Ask the server (`INFO cluster`): cluster mode when it reports `cluster_enabled:1`.
    Auto,
    /// One connection to the URL's server.
    Standalone,
    /// The cluster client: the URL is a seed node (or a single cluster endpoint such as
    /// ElastiCache Serverless's); the slot map comes from the cluster, redirections are followed.
    Cluster,
}

impl RedisMode {
    /// From `EXECUTOR_REDIS_CLUSTER` (`true`/`yes`/`1`, `false`/`no`/`0`, `auto` or unset).
    pub fn from_env() -> Result<RedisMode, AwsSetupError> {
        match std::env::var("EXECUTOR_REDIS_CLUSTER")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "" | "auto" => Ok(RedisMode::Auto),
            "true" | "yes" | "1" => Ok(RedisMode::Cluster),
            "false" | "no" | "0" => Ok(RedisMode::Standalone),
            other => Err(AwsSetupError(format!(
                "EXECUTOR_REDIS_CLUSTER must be true, false or auto, not '{other}'"
            ))),
        }
    }
}

/// A connection of either kind (both reconnect on their own).
#[derive(Clone)]
enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn script<T: FromRedisValue>(&self, inv: &ScriptInvocation<'_>) -> RedisResult<T> {
        match self.clone() {
            Conn::Standalone(mut c) => inv.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
        }
    }

    async fn cmd<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        match self.clone() {
            Conn::Standalone(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }
}

/// Redis limiter.
pub struct RedisLimiter {
    conn: Conn,
    clock: Arc<dyn Clock>,
    acquire: Script,
    inflight: Script,
}

fn err(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

/// The key of a scope's leases. The braces are a hash tag: only `scope` is hashed, so every
/// key of a scope (today one; [`keys`]) is in the same cluster slot.
fn key(scope: &str) -> String {
    format!("executor:inflight:{{{scope}}}")
}

/// Every key the limiter's commands and scripts touch for `scope`: all in one hash slot.
pub fn keys(scope: &str) -> Vec<String> {
    vec![key(scope)]
}

impl RedisLimiter {
    /// Connects (and pings) Redis: `redis://` in the clear, `rediss://` over TLS (rustls) with
    /// the system's roots, or with the PEM CA bundle at `EXECUTOR_REDIS_CA_FILE` (a private
    /// CA; the test suite's self-signed server); cluster or not as `EXECUTOR_REDIS_CLUSTER`
    /// says (default: as the server says).
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<RedisLimiter, AwsSetupError> {
        let ca = match std::env::var("EXECUTOR_REDIS_CA_FILE") {
            Ok(path) if !path.is_empty() => Some(
                std::fs::read(&path)
                    .map_err(|e| AwsSetupError(format!("EXECUTOR_REDIS_CA_FILE {path}: {e}")))?,
            ),
            _ => None,
        };
        RedisLimiter::connect_with(url, ca, RedisMode::from_env()?, clock).await
    }

    /// As [`RedisLimiter::connect`], trusting `ca_pem` (PEM) for `rediss://` when given, the
    /// mode asked of the server.
    pub async fn connect_with_ca(
        url: &str,
        ca_pem: Option<Vec<u8>>,
        clock: Arc<dyn Clock>,
    ) -> Result<RedisLimiter, AwsSetupError> {
        RedisLimiter::connect_with(url, ca_pem, RedisMode::Auto, clock).await
    }

    /// Whether this limiter talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// As [`RedisLimiter::connect_with_ca`], in `mode`.
    pub async fn connect_with(
        url: &str,
        ca_pem: Option<Vec<u8>>,
        mode: RedisMode,
        clock: Arc<dyn Clock>,
    ) -> Result<RedisLimiter, AwsSetupError> {
        let shown = url.split('@').next_back().unwrap_or(url);
        let fail =
            |e: redis::RedisError| AwsSetupError(format!("Redis at {shown} not reachable: {e}"));
        let timed_out = || AwsSetupError(format!("Redis at {shown} not reachable: timed out"));
        let certs = |root_cert: Vec<u8>| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        };
        let tls_ca = ca_pem.filter(|_| url.starts_with("rediss://"));
        let cluster = match mode {
            RedisMode::Cluster => true,
            RedisMode::Standalone => false,
            RedisMode::Auto => {
                let client = match tls_ca.clone() {
                    Some(root_cert) => redis::Client::build_with_tls(url, certs(root_cert)),
                    None => redis::Client::open(url),
                }
                .map_err(fail)?;
                let mut conn = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    client.get_multiplexed_async_connection(),
                )
                .await
                .map_err(|_| timed_out())?
                .map_err(fail)?;
                let _: String = redis::cmd("PING")
                    .query_async(&mut conn)
                    .await
                    .map_err(fail)?;
                // A server that does not answer INFO is used as a plain one.
                let info: Option<String> = redis::cmd("INFO")
                    .arg("cluster")
                    .query_async(&mut conn)
                    .await
                    .ok();
                info.is_some_and(|i| i.lines().any(|l| l.trim() == "cluster_enabled:1"))
            }
        };
        let conn = if cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(vec![url])
                .connection_timeout(std::time::Duration::from_secs(5))
                .response_timeout(std::time::Duration::from_secs(5));
            if let Some(root_cert) = tls_ca {
                builder = builder.certs(certs(root_cert));
            }
            let client = builder.build().map_err(fail)?;
            let mut conn = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                client.get_async_connection(),
            )
            .await
            .map_err(|_| timed_out())?
            .map_err(fail)?;
            let _: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(fail)?;
            Conn::Cluster(conn)
        } else {
            let client = match tls_ca {
                Some(root_cert) => redis::Client::build_with_tls(url, certs(root_cert)),
                None => redis::Client::open(url),
            }
            .map_err(fail)?;
            let mut conn = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                ConnectionManager::new(client),
            )
            .await
            .map_err(|_| timed_out())?
            .map_err(fail)?;
            let _: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(fail)?;
            Conn::Standalone(conn)
        };
        tracing::info!(redis = shown, cluster, "inflight limiter on Redis");
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
        let mut inv = self.acquire.key(key(scope));
        inv.arg(now)
            .arg(lease_id)
            .arg(capacity)
            .arg(now + ttl_ms as i64);
        let granted: i64 = self.conn.script(&inv).await.map_err(err)?;
        Ok(granted == 1)
    }

    async fn release(&self, scope: &str, lease_id: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .conn
            .cmd(redis::cmd("ZREM").arg(key(scope)).arg(lease_id))
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn inflight(&self, scope: &str) -> Result<u32, StoreError> {
        let mut inv = self.inflight.key(key(scope));
        inv.arg(self.clock.now_ms());
        let n: i64 = self.conn.script(&inv).await.map_err(err)?;
        Ok(n.max(0) as u32)
    }
}
