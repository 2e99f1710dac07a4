//! A guard store that fails the inserts and commits a test picks (a store error, as a crash
//! or an unreachable backend would leave them) and passes everything else to the real one.

use async_trait::async_trait;
use executor_lifecycle::{
    BudgetState, CommitError, Guard, GuardStore, IdempotencyItem, Inserted, ListQuery,
    ReconcileFailures, StoreError,
};
use std::sync::Arc;

/// Decides per guard whether the call fails.
pub type Pick = Arc<dyn Fn(&Guard) -> bool + Send + Sync>;

/// The real store, with the picked inserts and commits failing.
pub struct FaultyGuards {
    /// The real store.
    pub inner: Arc<dyn GuardStore>,
    /// Inserts of these guards fail.
    pub fail_insert: Pick,
    /// Commits of these next versions fail.
    pub fail_commit: Pick,
}

impl FaultyGuards {
    /// Nothing fails until the picks say so.
    pub fn new(inner: Arc<dyn GuardStore>) -> FaultyGuards {
        FaultyGuards {
            inner,
            fail_insert: Arc::new(|_| false),
            fail_commit: Arc::new(|_| false),
        }
    }
}

fn injected(what: &str) -> StoreError {
    StoreError::Unavailable(format!("injected: the {what} failed"))
}

#[async_trait]
impl GuardStore for FaultyGuards {
    async fn insert(
        &self,
        guard: &Guard,
        idem: Option<&IdempotencyItem>,
    ) -> Result<Inserted, StoreError> {
        if (self.fail_insert)(guard) {
            return Err(injected("insert"));
        }
        self.inner.insert(guard, idem).await
    }
    async fn get(&self, id: &str) -> Result<Option<Guard>, StoreError> {
        self.inner.get(id).await
    }
    async fn insert_idempotency(&self, item: &IdempotencyItem) -> Result<Inserted, StoreError> {
        self.inner.insert_idempotency(item).await
    }
    async fn find_idempotency(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<IdempotencyItem>, StoreError> {
        self.inner.find_idempotency(tenant, key).await
    }
    async fn commit(&self, expected: u64, next: &Guard) -> Result<(), CommitError> {
        if (self.fail_commit)(next) {
            return Err(CommitError::Store(injected("commit")));
        }
        self.inner.commit(expected, next).await
    }
    async fn budget(&self, key: &str) -> Result<Option<BudgetState>, StoreError> {
        self.inner.budget(key).await
    }
    async fn clear_outbox(&self, id: &str, version: u64) -> Result<(), StoreError> {
        self.inner.clear_outbox(id, version).await
    }
    async fn clear_outbox_of(&self, cleared: &Guard) -> Result<(), StoreError> {
        self.inner.clear_outbox_of(cleared).await
    }
    async fn request_cancel(&self, id: &str) -> Result<(), StoreError> {
        self.inner.request_cancel(id).await
    }
    async fn record_callback(&self, id: &str, callback_id: &str) -> Result<bool, StoreError> {
        self.inner.record_callback(id, callback_id).await
    }
    async fn record_callback_with_body(
        &self,
        id: &str,
        callback_id: &str,
        body: &[u8],
    ) -> Result<Option<bool>, StoreError> {
        self.inner
            .record_callback_with_body(id, callback_id, body)
            .await
    }
    async fn record_rejected_callback(
        &self,
        id: &str,
        at_ms: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.inner.record_rejected_callback(id, at_ms, reason).await
    }
    async fn set_reconcile_failures(
        &self,
        id: &str,
        failures: Option<&ReconcileFailures>,
    ) -> Result<(), StoreError> {
        self.inner.set_reconcile_failures(id, failures).await
    }
    async fn overdue(&self, due_before_ms: i64, limit: usize) -> Result<Vec<Guard>, StoreError> {
        self.inner.overdue(due_before_ms, limit).await
    }
    async fn list(&self, query: &ListQuery) -> Result<Vec<Guard>, StoreError> {
        self.inner.list(query).await
    }
}
