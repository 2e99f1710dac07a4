//! The in-process inflight limiter: per scope, lease id → expiry. Acquire is idempotent by
//! lease id, expired leases don't count, release is idempotent.

use async_trait::async_trait;
use executor_lifecycle::{Clock, InflightLimiter, StoreError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// In-process limiter (leases are lost with the process, which frees them: the executions
/// they belonged to re-acquire when they resume).
pub struct MemoryLimiter {
    clock: Arc<dyn Clock>,
    scopes: Mutex<HashMap<String, HashMap<String, i64>>>,
}

impl MemoryLimiter {
    /// An empty limiter.
    pub fn new(clock: Arc<dyn Clock>) -> MemoryLimiter {
        MemoryLimiter {
            clock,
            scopes: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl InflightLimiter for MemoryLimiter {
    async fn acquire(
        &self,
        scope: &str,
        lease_id: &str,
        capacity: u32,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let mut scopes = self.scopes.lock();
        let leases = scopes.entry(scope.to_string()).or_default();
        leases.retain(|_, exp| *exp > now);
        let expiry = now + ttl_ms as i64;
        if let Some(exp) = leases.get_mut(lease_id) {
            *exp = expiry;
            return Ok(true);
        }
        if leases.len() < capacity as usize {
            leases.insert(lease_id.to_string(), expiry);
            return Ok(true);
        }
        Ok(false)
    }

    async fn release(&self, scope: &str, lease_id: &str) -> Result<(), StoreError> {
        if let Some(leases) = self.scopes.lock().get_mut(scope) {
            leases.remove(lease_id);
        }
        Ok(())
    }

    async fn inflight(&self, scope: &str) -> Result<u32, StoreError> {
        let now = self.clock.now_ms();
        let mut scopes = self.scopes.lock();
        Ok(scopes
            .get_mut(scope)
            .map(|l| {
                l.retain(|_, exp| *exp > now);
                l.len() as u32
            })
            .unwrap_or(0))
    }
}
