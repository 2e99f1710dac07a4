//! The SQLite store: connection, schema, and the blocking-call helper every port uses.

use crate::EmbeddedError;
use executor_lifecycle::{Clock, QueueName, StoreError};
use parking_lot::Mutex;
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Notify;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    next_due_ms INTEGER NOT NULL,
    error_class TEXT,
    cost_usd_micros INTEGER,
    outbox_pending INTEGER NOT NULL DEFAULT 0,
    is_final INTEGER NOT NULL DEFAULT 0,
    record TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS executions_tenant_created ON executions (tenant, created_at_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS executions_due ON executions (is_final, next_due_ms);
CREATE INDEX IF NOT EXISTS executions_outbox ON executions (outbox_pending, updated_at_ms);
CREATE TABLE IF NOT EXISTS callbacks_rejected (
    execution_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS callbacks_rejected_by_execution ON callbacks_rejected (execution_id);
CREATE TABLE IF NOT EXISTS reconcile_failures (
    execution_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    first_failure_ms INTEGER NOT NULL,
    last_failure_ms INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS callbacks (
    execution_id TEXT NOT NULL,
    callback_id TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (execution_id, callback_id)
);
CREATE TABLE IF NOT EXISTS reruns (
    execution_id TEXT NOT NULL,
    rerun_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (execution_id, rerun_id)
);
CREATE TABLE IF NOT EXISTS idempotency (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue, visible_at_ms);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outcome_events (
    event_id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS budgets (
    key TEXT PRIMARY KEY,
    line TEXT NOT NULL,
    limit_usd_micros INTEGER NOT NULL,
    reserved_usd_micros INTEGER NOT NULL,
    spent_usd_micros INTEGER NOT NULL,
    settled_executions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
PRAGMA user_version = 1;
"#;

/// The SQLite store. Cheap to share (`Arc`); operations run on the blocking pool.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) notify: HashMap<QueueName, Arc<Notify>>,
    /// Receives after which a message is dead-lettered (like SQS `maxReceiveCount`).
    pub max_receive_count: u32,
}

impl SqliteStore {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<SqliteStore, EmbeddedError> {
        let err = |source| EmbeddedError::Database {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // A page cache that holds the indexes of a large store (SQLite's default is 2 MB),
        // and reads through a memory map instead of a read call per page.
        conn.pragma_update(None, "cache_size", -65_536)
            .map_err(err)?;
        conn.pragma_update(None, "mmap_size", 1_073_741_824_i64)
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        let notify = QueueName::ALL
            .into_iter()
            .map(|q| (q, Arc::new(Notify::new())))
            .collect();
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            clock,
            notify,
            max_receive_count: 10,
        })
    }

    /// Runs `f` with the connection, on the calling thread. Statements here are short
    /// (primary-key reads and writes, WAL without fsync per commit), so running them in place
    /// costs less than handing each to the blocking pool and back, which the profile showed
    /// as the largest cost of a transition (docs/benchmarks.md).
    pub(crate) async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let mut c = self.conn.lock();
        f(&mut c)
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// Maps a SQLite error.
pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

/// Executes a statement through the connection's statement cache (preparing a statement costs
/// more than running these short ones).
pub(crate) fn exec(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(p)
}
