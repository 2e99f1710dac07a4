//! The three queues on SQLite, with SQS semantics: per-message delay, visibility timeout,
//! receipts that go stale on redelivery, a receive count and a dead-letter table.

use crate::db::{SqliteStore, db_err, exec};
use async_trait::async_trait;
use executor_lifecycle::{Delivery, Queue, QueueName, StoreError};
use rusqlite::params;

fn receipt() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

/// The message row a receipt (`{id}:{random}`) names, so statements find it by primary key; a
/// receipt that does not parse names no row.
fn row_of(receipt: &str) -> i64 {
    receipt
        .split_once(':')
        .and_then(|(id, _)| id.parse().ok())
        .unwrap_or(-1)
}

#[async_trait]
impl Queue for SqliteStore {
    async fn send(&self, queue: QueueName, body: &str, delay_ms: u64) -> Result<(), StoreError> {
        use executor_lifecycle::limits;
        limits::check("a queue message", body.len(), limits::SQS_MESSAGE_MAX_BYTES)?;
        let body = body.to_string();
        let visible = self.now() + delay_ms as i64;
        self.with(move |conn| {
            conn.prepare_cached(
                "INSERT INTO messages (queue, body, visible_at_ms) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut st| st.execute(params![queue.as_str(), body, visible]))
            .map(|_| ())
            .map_err(db_err)
        })
        .await?;
        if delay_ms == 0
            && let Some(n) = self.notify.get(&queue)
        {
            n.notify_one();
        }
        Ok(())
    }

    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility_ms: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now = self.now();
        let max_receives = self.max_receive_count;
        self.with(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let rows: Vec<(i64, String, u32)> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, body, receive_count FROM messages
                         WHERE queue = ?1 AND visible_at_ms <= ?2 ORDER BY visible_at_ms, id LIMIT ?3",
                    )
                    .map_err(db_err)?;
                stmt.query_map(params![queue.as_str(), now, max as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?
            };
            let mut out = Vec::with_capacity(rows.len());
            for (id, body, count) in rows {
                if count >= max_receives {
                    exec(&tx,
                        "INSERT INTO dead_letters (queue, body, reason, receive_count, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![queue.as_str(), body, "max receive count exceeded", count, now],
                    )
                    .map_err(db_err)?;
                    exec(&tx, "DELETE FROM messages WHERE id = ?1", params![id]).map_err(db_err)?;
                    continue;
                }
                let r = format!("{id}:{}", receipt());
                tx.prepare_cached(
                    "UPDATE messages SET visible_at_ms = ?1, receipt = ?2, receive_count = receive_count + 1 WHERE id = ?3",
                )
                .and_then(|mut st| st.execute(params![now + visibility_ms as i64, r, id]))
                .map_err(db_err)?;
                out.push(Delivery { receipt: r, body, receive_count: count + 1 });
            }
            tx.commit().map_err(db_err)?;
            Ok(out)
        })
        .await
    }

    async fn ack(&self, _queue: QueueName, receipt: &str) -> Result<(), StoreError> {
        let r = receipt.to_string();
        self.with(move |conn| {
            conn.prepare_cached("DELETE FROM messages WHERE id = ?1 AND receipt = ?2")
                .and_then(|mut st| st.execute(params![row_of(&r), r]))
                .map(|_| ())
                .map_err(db_err)
        })
        .await
    }

    async fn retry_later(
        &self,
        _queue: QueueName,
        receipt: &str,
        delay_ms: u64,
    ) -> Result<(), StoreError> {
        let r = receipt.to_string();
        let visible = self.now() + delay_ms as i64;
        self.with(move |conn| {
            exec(
                conn,
                "UPDATE messages SET visible_at_ms = ?1 WHERE id = ?2 AND receipt = ?3",
                params![visible, row_of(&r), r],
            )
            .map(|_| ())
            .map_err(db_err)
        })
        .await
    }

    async fn dead_letter(
        &self,
        queue: QueueName,
        receipt: &str,
        _body: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        // The row keeps the message's own body.
        let (r, reason) = (receipt.to_string(), reason.to_string());
        let now = self.now();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            exec(&tx,
                "INSERT INTO dead_letters (queue, body, reason, receive_count, at_ms)
                 SELECT ?1, body, ?2, receive_count, ?3 FROM messages WHERE id = ?4 AND receipt = ?5",
                params![queue.as_str(), reason, now, row_of(&r), r],
            )
            .map_err(db_err)?;
            exec(&tx, "DELETE FROM messages WHERE id = ?1 AND receipt = ?2", params![row_of(&r), r])
                .map_err(db_err)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn wait(&self, queue: QueueName, timeout_ms: u64) {
        let sleep = tokio::time::sleep(std::time::Duration::from_millis(timeout_ms));
        match self.notify.get(&queue) {
            Some(n) => {
                tokio::select! {
                    _ = n.notified() => {}
                    _ = sleep => {}
                }
            }
            None => sleep.await,
        }
    }
}

impl SqliteStore {
    /// Messages in a queue (visible or not).
    pub async fn queue_depth(&self, queue: QueueName) -> Result<usize, StoreError> {
        self.with(move |conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM messages WHERE queue = ?1",
                params![queue.as_str()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(db_err)
        })
        .await
    }

    /// Messages in the dead-letter table.
    pub async fn dead_letter_count(&self) -> Result<usize, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT COUNT(*) FROM dead_letters", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as usize)
            .map_err(db_err)
        })
        .await
    }
}
