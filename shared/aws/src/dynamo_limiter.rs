//! The per-provider inflight limiter on DynamoDB (the default on AWS: no VPC, no Redis).
//!
//! Leases are items of the execution table: `pk = lease#{scope}#{shard}` holding `leases`, a
//! map of lease id → expiry (ms), and `ver`, bumped by every write. A scope's capacity is split
//! over `N` shard items (at least [`LEASES_PER_SHARD`] leases each, at most [`MAX_SHARDS`]
//! items) so that one busy provider is not one hot item under DynamoDB's per-partition write
//! limit; shard `i` allows `capacity / N` leases, plus one for `i < capacity % N`, so the shares
//! add up to exactly the capacity. A lease id always maps to the same shard (a hash), so
//! re-acquiring a held lease refreshes it instead of counting twice, and a release is one
//! write to a known item. `N` per scope is fixed when the limiter is built, from the
//! capacities the deployment configures ([`DynamoLimiter::plan`]), so the functions that only
//! release (poll, finalize) find the same item as the one that acquired (submit).
//!
//! Acquire is first one conditional update with no read: add the lease if it is not there and
//! the map has fewer than the shard's share of entries (`size(leases) < :share`), which
//! DynamoDB evaluates atomically, so racing acquirers can never overfill a shard. Only when
//! that condition fails (the shard is new, full, holds expired entries, or already holds this
//! lease) does it read the shard (consistent) and either refresh the held lease, or drop the
//! expired entries it read and write the map back with `ConditionExpression ver = :read`, or
//! report no capacity. Every write bumps `ver`, so a prune never writes back a lease released
//! or added since its read. Only `GetItem` and `UpdateItem` are used (template.yaml's roles
//! grant those).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use executor_lifecycle::{Clock, InflightLimiter, StoreError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// Fewest leases one shard item holds (small capacities live in one item).
pub const LEASES_PER_SHARD: u32 = 32;
/// Most shard items per scope.
pub const MAX_SHARDS: u32 = 32;
/// Conditional-write races an acquire rides out before reporting the store busy.
const MAX_RACES: usize = 32;

fn rand_below(n: u64) -> u64 {
    use rand::Rng;
    rand::rng().random_range(0..n.max(1))
}

/// DynamoDB limiter.
pub struct DynamoLimiter {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
    shards: std::sync::RwLock<HashMap<String, u32>>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("dynamodb limiter: {e}"))
}

/// Shard items for a capacity.
pub fn shards_for(capacity: u32) -> u32 {
    (capacity / LEASES_PER_SHARD).clamp(1, MAX_SHARDS)
}

/// Leases shard `i` of `n` may hold: the shares add up to `capacity`.
pub fn share_of(capacity: u32, n: u32, i: u32) -> u32 {
    capacity / n + u32::from(i < capacity % n)
}

/// The shard a lease id lives in.
pub fn shard_of(lease_id: &str, n: u32) -> u32 {
    let h = Sha256::digest(lease_id.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % n.max(1)
}

fn pk(scope: &str, shard: u32) -> String {
    format!("lease#{scope}#{shard}")
}

struct Shard {
    exists: bool,
    ver: i64,
    leases: HashMap<String, i64>,
}

impl DynamoLimiter {
    /// A limiter on `table`.
    pub fn new(client: Client, table: String, clock: Arc<dyn Clock>) -> DynamoLimiter {
        DynamoLimiter {
            client,
            table,
            clock,
            shards: std::sync::RwLock::new(HashMap::new()),
        }
    }

    /// Fixes the shard count of each scope from its configured capacity (scopes not named
    /// keep one shard).
    pub fn plan(&self, capacities: impl IntoIterator<Item = (String, u32)>) {
        if let Ok(mut s) = self.shards.write() {
            for (scope, capacity) in capacities {
                s.insert(scope, shards_for(capacity));
            }
        }
    }

    fn shards(&self, scope: &str) -> u32 {
        self.shards
            .read()
            .ok()
            .and_then(|s| s.get(scope).copied())
            .unwrap_or(1)
    }

    async fn read(&self, key: &str) -> Result<Shard, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| err(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        let Some(item) = out.item else {
            return Ok(Shard {
                exists: false,
                ver: 0,
                leases: HashMap::new(),
            });
        };
        let ver = item
            .get("ver")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let leases = item
            .get("leases")
            .and_then(|v| v.as_m().ok())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_n().ok()?.parse().ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Shard {
            exists: true,
            ver,
            leases,
        })
    }

    /// The fast path: adds a new lease to an existing shard that has room, in one atomic
    /// conditional update. False when the condition fails (no item, no room, expired entries
    /// taking room, or the lease already there).
    async fn add_if_room(
        &self,
        key: &str,
        lease_id: &str,
        share: u32,
        expiry: i64,
    ) -> Result<bool, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_string()))
            .update_expression("SET leases.#id = :exp ADD ver :one")
            .condition_expression("attribute_exists(leases) AND attribute_not_exists(leases.#id) AND size(leases) < :share")
            .expression_attribute_names("#id", lease_id)
            .expression_attribute_values(":exp", AttributeValue::N(expiry.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":share", AttributeValue::N(share.to_string()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(err(aws_sdk_dynamodb::error::DisplayErrorContext(&e))),
        }
    }

    /// Writes `leases` as the shard's whole map if nobody wrote it since it was read.
    async fn write(
        &self,
        key: &str,
        read: &Shard,
        leases: &HashMap<String, i64>,
    ) -> Result<bool, StoreError> {
        let map = leases
            .iter()
            .map(|(k, v)| (k.clone(), AttributeValue::N(v.to_string())))
            .collect();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_string()))
            .update_expression("SET leases = :m, ver = :next")
            .expression_attribute_values(":m", AttributeValue::M(map))
            .expression_attribute_values(":next", AttributeValue::N((read.ver + 1).to_string()));
        req = if read.exists {
            req.condition_expression("ver = :ver")
                .expression_attribute_values(":ver", AttributeValue::N(read.ver.to_string()))
        } else {
            req.condition_expression("attribute_not_exists(pk)")
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(err(aws_sdk_dynamodb::error::DisplayErrorContext(&e))),
        }
    }
}

#[async_trait]
impl InflightLimiter for DynamoLimiter {
    async fn acquire(
        &self,
        scope: &str,
        lease_id: &str,
        capacity: u32,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        if capacity == 0 {
            return Ok(false);
        }
        let n = self.shards(scope);
        let i = shard_of(lease_id, n);
        let share = share_of(capacity, n, i);
        let key = pk(scope, i);
        for race in 0..MAX_RACES {
            let now = self.clock.now_ms();
            if self
                .add_if_room(&key, lease_id, share, now + ttl_ms as i64)
                .await?
            {
                return Ok(true);
            }
            let shard = self.read(&key).await?;
            let mut live: HashMap<String, i64> = shard
                .leases
                .iter()
                .filter(|(_, exp)| **exp > now)
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            let held = live.contains_key(lease_id);
            if !held && live.len() >= share as usize {
                return Ok(false);
            }
            live.insert(lease_id.to_string(), now + ttl_ms as i64);
            if self.write(&key, &shard, &live).await? {
                return Ok(true);
            }
            // Lost a race with another writer of this shard: a short, growing, jittered pause.
            let pause = rand_below(5u64 << race.min(5)) + 1;
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
        Err(StoreError::Unavailable(format!(
            "dynamodb limiter: {key} kept changing under {MAX_RACES} acquires in a row"
        )))
    }

    async fn release(&self, scope: &str, lease_id: &str) -> Result<(), StoreError> {
        let key = pk(scope, shard_of(lease_id, self.shards(scope)));
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key))
            .update_expression("REMOVE leases.#id ADD ver :one")
            .condition_expression("attribute_exists(leases.#id)")
            .expression_attribute_names("#id", lease_id)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            // Not held (released before, expired and pruned, or never taken): nothing to do.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(err(aws_sdk_dynamodb::error::DisplayErrorContext(&e))),
        }
    }

    async fn inflight(&self, scope: &str) -> Result<u32, StoreError> {
        Ok(self.held(scope).await?.len() as u32)
    }
}

impl DynamoLimiter {
    /// The unexpired leases of a scope, with their expiry (ms): which acquisitions hold the
    /// slots (a test names the executions of leaked leases with it).
    pub async fn held(&self, scope: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let now = self.clock.now_ms();
        let mut held = Vec::new();
        for i in 0..self.shards(scope) {
            let shard = self.read(&pk(scope, i)).await?;
            held.extend(shard.leases.into_iter().filter(|(_, exp)| *exp > now));
        }
        held.sort();
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_capacity() {
        for capacity in [1, 5, 31, 32, 33, 64, 100, 999, 1000, 5000] {
            let n = shards_for(capacity);
            let total: u32 = (0..n).map(|i| share_of(capacity, n, i)).sum();
            assert_eq!(total, capacity, "capacity {capacity} over {n} shards");
            assert!(n <= MAX_SHARDS);
        }
        assert_eq!(shards_for(5), 1);
        assert_eq!(shards_for(1000), 31);
    }

    #[test]
    fn a_lease_id_has_one_home() {
        assert_eq!(shard_of("ex_1:1:v3", 31), shard_of("ex_1:1:v3", 31));
        assert_eq!(shard_of("anything", 1), 0);
    }
}
