//! Ports: the traits through which the lifecycle touches the world.
//!
//! Backends implement them: `executor-embedded` (SQLite, files, in-process) and the AWS backend
//! (S3, DynamoDB, SQS, Redis). The lifecycle never sees which.

use crate::model::{Guard, OutcomeEvent, QueueName};
use crate::taxonomy::Failure;
use async_trait::async_trait;

/// A backend failure (I/O, unreachable service, corrupt data). Always worth a retry of the
/// whole message: the protocol is idempotent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or failed.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The write exceeds a service's size limit ([`crate::limits`]): retrying cannot help.
    #[error("too large: {0}")]
    TooLarge(String),
}

impl StoreError {
    /// Wraps any error as `Unavailable`.
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Outcome of a write-once put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// This call wrote the key.
    Written,
    /// The key existed already; nothing was overwritten.
    AlreadyExists,
}

/// Write-once blob storage (S3 with `If-None-Match: *`, or files).
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Writes `bytes` at `key` unless the key exists.
    async fn put_once(&self, key: &str, bytes: Vec<u8>) -> Result<PutOutcome, StoreError>;
    /// Reads a key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keys under a prefix, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// A short-lived URL from which a client reads `key` directly (S3's presigned GET), so
    /// large media never pass through a function's response (Lambda's is 6 MB at most).
    /// `Ok(None)`: this store serves bytes itself (embedded), or the key does not exist.
    async fn presigned_get(
        &self,
        key: &str,
        content_type: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        let _ = (key, content_type, expires_in);
        Ok(None)
    }
    /// A short-lived URL to which a client uploads `key` directly with one `PUT` of exactly
    /// `content_length` bytes of `content_type` (S3's presigned PUT), so large uploads never
    /// pass through a function. `Ok(None)`: this store takes uploads through the API itself.
    async fn presigned_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        let _ = (key, content_type, content_length, expires_in);
        Ok(None)
    }
    /// The size of `key` (`None`: it does not exist).
    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.get(key).await?.map(|b| b.len() as u64))
    }
    /// The first `n` bytes of `key` (a ranged read where the store has one).
    async fn get_prefix(&self, key: &str, n: usize) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(key).await?.map(|mut b| {
            b.truncate(n);
            b
        }))
    }
    /// Deletes `key` (a no-op when it does not exist). Only uploaded files are ever deleted:
    /// every other key is write-once for the life of its execution.
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(format!(
            "this blob store cannot delete {key}"
        )))
    }
}

/// The idempotency item: (tenant, key) → execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyItem {
    /// Tenant.
    pub tenant: String,
    /// The customer's key.
    pub key: String,
    /// The execution it created.
    pub execution_id: String,
    /// Hash of the request body, to refuse reuse of a key for another request.
    pub request_hash: String,
}

/// Result of inserting a new execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Created.
    Created,
    /// The idempotency key was taken (by this execution id, with this request hash).
    IdempotencyKeyTaken(IdempotencyItem),
    /// A budget the guard reserves on ([`Guard::budget`]) has no room for its estimate:
    /// nothing was written.
    BudgetExceeded(crate::budget::BudgetRefusal),
}

/// A commit that failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// Someone else committed this version first.
    #[error("version conflict")]
    Conflict,
    /// The backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Filters of a listing (newest first).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this tenant (always set by the API).
    pub tenant: Option<String>,
    /// Only these statuses.
    pub statuses: Vec<crate::status::Status>,
    /// Only executions without an outcome yet or whose outcome ([`crate::HotState::outcome`])
    /// is one of these (empty: no constraint). The API's public status of a final execution
    /// is its outcome: with `statuses` this filters on it.
    pub outcomes: Vec<crate::status::Status>,
    /// Only executions whose outcome delivery was attempted (`Some(true)`:
    /// `hot.delivery_attempts > 0`, i.e. there was a webhook) or not (`Some(false)`).
    pub delivery_attempted: Option<bool>,
    /// Only this model.
    pub model: Option<String>,
    /// Only this provider.
    pub provider: Option<String>,
    /// Created at or after (ms).
    pub created_after_ms: Option<i64>,
    /// Created strictly before (ms).
    pub created_before_ms: Option<i64>,
    /// Only executions whose error has this class.
    pub error_class: Option<crate::taxonomy::ErrorClass>,
    /// Only executions with an error (failed, timed out, or degraded delivery).
    pub with_error: bool,
    /// Only executions the reconciler parked ([`crate::Guard::parked`]).
    pub parked: bool,
    /// Strictly before this (created_at_ms, id) position: the cursor.
    pub before: Option<(i64, String)>,
    /// Page size.
    pub limit: usize,
}

impl ListQuery {
    /// Whether `g` passes the filters and the cursor (the tenant and the page size aside):
    /// the in-memory form of what the backends' listings select.
    pub fn matches(&self, g: &Guard) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&g.status()))
            && self.model.as_ref().is_none_or(|m| g.requested_model() == m)
            && self.provider.as_ref().is_none_or(|p| &g.provider == p)
            && self.created_after_ms.is_none_or(|a| g.created_at_ms >= a)
            && self.created_before_ms.is_none_or(|b| g.created_at_ms < b)
            && self.error_class.is_none_or(|c| g.error_class() == Some(c))
            && (!self.with_error || g.error_class().is_some())
            && (!self.parked || g.parked().is_some())
            && self.before.as_ref().is_none_or(|(at, id)| {
                g.created_at_ms < *at || (g.created_at_ms == *at && g.id.as_str() < id.as_str())
            })
    }
}

/// The guard/index store (DynamoDB item per execution, or a SQLite row).
///
/// `commit` is the single commit point: it writes `next` only if the stored version is
/// `expected`. It must not overwrite `cancel_requested`, the callbacks or
/// `reconcile_failures`, which are written by `request_cancel`, `record_callback`,
/// `record_rejected_callback` and `set_reconcile_failures` and overlaid on every read.
#[async_trait]
pub trait GuardStore: Send + Sync {
    /// Inserts version 0, atomically with the idempotency item if one is given, when the
    /// guard is a rerun ([`Guard::rerun_of`]) with the link added to the original's `reruns`
    /// (overlaid on reads like the callbacks; never written by `commit`), and when it holds a
    /// budget ([`Guard::budget`]) with its estimate reserved on each budget item, if each has
    /// room ([`crate::budget::BudgetState::fits`]; an item not stored yet is empty, with the
    /// hold's limit; a stored item whose limit differs takes the hold's). A taken idempotency
    /// key is answered before the budget is looked at.
    async fn insert(
        &self,
        guard: &Guard,
        idempotency: Option<&IdempotencyItem>,
    ) -> Result<Inserted, StoreError>;
    /// Consistent read of a guard.
    async fn get(&self, id: &str) -> Result<Option<Guard>, StoreError>;
    /// Inserts an idempotency item of its own (a batch's: the key names the batch, not an
    /// execution) unless the (tenant, key) is taken; a taken key answers the existing item.
    async fn insert_idempotency(&self, item: &IdempotencyItem) -> Result<Inserted, StoreError>;
    /// Looks up an idempotency item.
    async fn find_idempotency(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<IdempotencyItem>, StoreError>;
    /// Conditional write of `next` if the stored version is `expected`; when `next` settles
    /// its budget hold at this version ([`crate::budget::BudgetHold::settles_at`]), in the
    /// same transaction each item's reservation moves to `spent` with the actual cost.
    async fn commit(&self, expected: u64, next: &Guard) -> Result<(), CommitError>;
    /// A budget item as stored (`None`: nothing was ever reserved on it).
    async fn budget(&self, key: &str) -> Result<Option<crate::budget::BudgetState>, StoreError>;
    /// Empties the outbox if the stored version is still `version` (no version bump).
    async fn clear_outbox(&self, id: &str, version: u64) -> Result<(), StoreError>;
    /// Empties the outbox given the guard as committed at its version, with the outbox already
    /// emptied, so a backend can clear it in one conditional write without reading it first.
    async fn clear_outbox_of(&self, cleared: &Guard) -> Result<(), StoreError> {
        self.clear_outbox(&cleared.id, cleared.version()).await
    }
    /// Sets the cancel flag.
    async fn request_cancel(&self, id: &str) -> Result<(), StoreError>;
    /// Records a received callback id; true if it was new.
    async fn record_callback(&self, id: &str, callback_id: &str) -> Result<bool, StoreError>;
    /// Records a received callback id with its (small, compressed) body kept beside the guard,
    /// in one write: `Some(new)`, the body readable in [`Guard::callback_bodies`]; `None` when
    /// this store keeps no bodies (the caller writes the body's blob and calls
    /// [`GuardStore::record_callback`]).
    async fn record_callback_with_body(
        &self,
        _id: &str,
        _callback_id: &str,
        _body: &[u8],
    ) -> Result<Option<bool>, StoreError> {
        Ok(None)
    }
    /// Notes a refused callback, keeping the first [`crate::model::REJECTED_CALLBACKS_KEPT`]
    /// (later ones are dropped); an unknown id changes nothing.
    async fn record_rejected_callback(
        &self,
        id: &str,
        at_ms: i64,
        reason: &str,
    ) -> Result<(), StoreError>;
    /// Writes the reconciler's failure record of an execution (`Some`) or removes it (`None`).
    /// Not versioned: a commit never overwrites it, every read overlays it. An unknown id
    /// changes nothing.
    async fn set_reconcile_failures(
        &self,
        id: &str,
        failures: Option<&crate::model::ReconcileFailures>,
    ) -> Result<(), StoreError>;
    /// Non-final executions whose next message is overdue (`next_due_ms < due_before_ms`) or
    /// whose outbox is pending since before `due_before_ms`, oldest first.
    async fn overdue(&self, due_before_ms: i64, limit: usize) -> Result<Vec<Guard>, StoreError>;
    /// A page of executions, newest first.
    async fn list(&self, query: &ListQuery) -> Result<Vec<Guard>, StoreError>;
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Handle for ack / retry.
    pub receipt: String,
    /// The raw body (parsed by the worker; malformed bodies are dead-lettered).
    pub body: String,
    /// How many times it was received.
    pub receive_count: u32,
}

/// A queue with per-message delay and visibility timeout (SQS, or a SQLite table).
#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends a body, visible after `delay_ms`.
    async fn send(&self, queue: QueueName, body: &str, delay_ms: u64) -> Result<(), StoreError>;
    /// Receives up to `max` visible messages, hiding them for `visibility_ms`.
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility_ms: u64,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Deletes a received message.
    async fn ack(&self, queue: QueueName, receipt: &str) -> Result<(), StoreError>;
    /// Makes a received message visible again after `delay_ms`.
    async fn retry_later(
        &self,
        queue: QueueName,
        receipt: &str,
        delay_ms: u64,
    ) -> Result<(), StoreError>;
    /// Moves a received message (`body` as received) to the queue's dead-letter queue, body
    /// unchanged so it can be redriven, with `reason` beside it.
    async fn dead_letter(
        &self,
        queue: QueueName,
        receipt: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), StoreError>;
    /// Waits until a message may be available on `queue` or `timeout_ms` passes. Backends with
    /// a wake-up signal (embedded) or long polling override it; the default just sleeps.
    async fn wait(&self, queue: QueueName, timeout_ms: u64) {
        let _ = queue;
        tokio::time::sleep(std::time::Duration::from_millis(timeout_ms)).await;
    }
}

/// Per-provider inflight capacity with expiring leases.
#[async_trait]
pub trait InflightLimiter: Send + Sync {
    /// Takes a slot for `lease_id` if fewer than `capacity` are held (expired leases don't
    /// count). Re-acquiring a held lease id succeeds and refreshes its expiry.
    async fn acquire(
        &self,
        scope: &str,
        lease_id: &str,
        capacity: u32,
        ttl_ms: u64,
    ) -> Result<bool, StoreError>;
    /// Releases a lease; releasing an unknown or released lease is a no-op.
    async fn release(&self, scope: &str, lease_id: &str) -> Result<(), StoreError>;
    /// Leases currently held (unexpired) in a scope.
    async fn inflight(&self, scope: &str) -> Result<u32, StoreError>;
}

/// Downstream outcome sink (billing, CRM). Idempotent by event id.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes an outcome event; publishing the same id twice stores it once.
    async fn publish(&self, event: &OutcomeEvent) -> Result<(), StoreError>;
}

/// Delivers outcome events to customer webhooks (signed per Standard Webhooks).
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// One delivery attempt.
    async fn deliver(&self, url: &str, event: &OutcomeEvent) -> Result<(), Failure>;
}

/// Wall-clock time.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// Sees every committed transition, after its commit (metrics: Prometheus in `executor dev`,
/// CloudWatch Embedded Metric Format lines in Lambda). Must not block.
pub trait Observer: Send + Sync {
    /// A transition of `guard` (as committed) was recorded as `record`.
    fn committed(&self, guard: &crate::model::Guard, record: &crate::model::TransitionRecord);
    /// A provider callback was refused (forged, stale, another job's, past the cap).
    fn callback_refused(&self, provider: &str) {
        let _ = provider;
    }
    /// The reconciler could not re-drive one execution (`reason` says why).
    fn reconcile_failed(&self, execution_id: &str, reason: &str) {
        let _ = (execution_id, reason);
    }
}
