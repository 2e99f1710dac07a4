//! The embedded backend: the whole system on one machine with no setup.
//!
//! One SQLite file (bundled, WAL) holds the guard/index rows, the idempotency keys, the three
//! queues, the outcome events and the API keys; blobs are zstd files under the data directory
//! mirroring the S3 key layout; the inflight limiter lives in the process. A kill -9 loses
//! nothing that was committed: WAL survives a process crash, and queue messages whose
//! handling was interrupted become visible again after their visibility timeout.

pub mod blobs;
pub mod db;
pub mod events;
pub mod guards;
pub mod limiter;
pub mod queue;

pub use blobs::FileBlobStore;
pub use db::SqliteStore;
pub use events::StoredEvent;
pub use limiter::MemoryLimiter;

use executor_lifecycle::Clock;
use std::path::Path;
use std::sync::Arc;

/// Why the embedded backend could not open.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The data directory could not be created or used.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("database {path}: {source}")]
    Database {
        /// The database file.
        path: String,
        /// Why.
        source: rusqlite::Error,
    },
}

/// The three embedded ports, opened on one data directory.
pub struct EmbeddedBackend {
    /// Guards, queues, outcome events, API keys.
    pub store: Arc<SqliteStore>,
    /// Blobs.
    pub blobs: Arc<FileBlobStore>,
    /// Inflight limiter.
    pub limiter: Arc<MemoryLimiter>,
}

impl EmbeddedBackend {
    /// Opens (creating if needed) the backend in `data_dir`.
    pub fn open(data_dir: &Path, clock: Arc<dyn Clock>) -> Result<EmbeddedBackend, EmbeddedError> {
        std::fs::create_dir_all(data_dir).map_err(|source| EmbeddedError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let store = Arc::new(SqliteStore::open(
            &data_dir.join("executor.db"),
            clock.clone(),
        )?);
        let blobs = Arc::new(FileBlobStore::new(data_dir.join("blobs")));
        let limiter = Arc::new(MemoryLimiter::new(clock));
        Ok(EmbeddedBackend {
            store,
            blobs,
            limiter,
        })
    }
}
