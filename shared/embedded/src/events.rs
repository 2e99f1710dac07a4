//! The outcome-event outbox table (the embedded downstream sink), API keys, and inspection
//! helpers for the CLI and tests.

use crate::db::{SqliteStore, db_err, exec};
use async_trait::async_trait;
use executor_lifecycle::{EventSink, OutcomeEvent, StoreError};
use rusqlite::{OptionalExtension, params};

/// One stored outcome event.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Event id.
    pub event_id: String,
    /// Execution.
    pub execution_id: String,
    /// The event JSON.
    pub body: serde_json::Value,
    /// When stored (ms).
    pub created_at_ms: i64,
}

#[async_trait]
impl EventSink for SqliteStore {
    async fn publish(&self, event: &OutcomeEvent) -> Result<(), StoreError> {
        let body = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        use executor_lifecycle::limits;
        limits::check(
            "an outcome event",
            body.len(),
            limits::OUTCOME_EVENT_MAX_BYTES,
        )?;
        let (id, execution) = (event.id.clone(), event.execution_id.clone());
        let now = self.now();
        self.with(move |conn| {
            exec(conn,
                "INSERT OR IGNORE INTO outcome_events (event_id, execution_id, body, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![id, execution, body, now],
            )
            .map(|_| ())
            .map_err(db_err)
        })
        .await
    }
}

impl SqliteStore {
    /// Every stored outcome event, oldest first.
    pub async fn outcome_events(&self) -> Result<Vec<StoredEvent>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT event_id, execution_id, body, created_at_ms FROM outcome_events ORDER BY created_at_ms, event_id")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| {
                    let body: String = r.get(2)?;
                    Ok(StoredEvent {
                        event_id: r.get(0)?,
                        execution_id: r.get(1)?,
                        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                        created_at_ms: r.get(3)?,
                    })
                })
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            Ok(rows)
        })
        .await
    }

    /// Registers an API key (by its hash) for a tenant.
    pub async fn add_api_key(&self, tenant: &str, key_hash: &str) -> Result<(), StoreError> {
        let (t, h) = (tenant.to_string(), key_hash.to_string());
        let now = self.now();
        self.with(move |conn| {
            exec(conn,
                "INSERT OR REPLACE INTO api_keys (key_hash, tenant, created_at_ms) VALUES (?1, ?2, ?3)",
                params![h, t, now],
            )
            .map(|_| ())
            .map_err(db_err)
        })
        .await
    }

    /// The tenant of a key hash.
    pub async fn tenant_for_key_hash(&self, key_hash: &str) -> Result<Option<String>, StoreError> {
        let h = key_hash.to_string();
        self.with(move |conn| {
            conn.query_row(
                "SELECT tenant FROM api_keys WHERE key_hash = ?1",
                params![h],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    /// Every API key: `(key hash, tenant, created_at_ms)`, oldest first (operators'
    /// `executor keys list`; the keys themselves are never stored).
    pub async fn list_api_keys(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT key_hash, tenant, created_at_ms FROM api_keys ORDER BY created_at_ms, key_hash",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            Ok(rows)
        })
        .await
    }

    /// Deletes the API key with this hash; false if there was none. The API looks keys up on
    /// every request here, so a revoked key is refused from the next request on.
    pub async fn revoke_api_key(&self, key_hash: &str) -> Result<bool, StoreError> {
        let h = key_hash.to_string();
        self.with(move |conn| {
            exec(conn, "DELETE FROM api_keys WHERE key_hash = ?1", params![h])
                .map(|n| n > 0)
                .map_err(db_err)
        })
        .await
    }

    /// Executions per status.
    pub async fn count_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT status, COUNT(*) FROM executions GROUP BY status ORDER BY status")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            Ok(rows)
        })
        .await
    }
}
