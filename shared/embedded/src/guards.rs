//! The guard/index store on SQLite: one row per execution; `commit` is
//! `UPDATE ... WHERE id = ? AND version = ?`.

use crate::db::{SqliteStore, db_err, exec};
use async_trait::async_trait;
use executor_lifecycle::{
    BudgetHold, BudgetRefusal, BudgetState, CommitError, Guard, GuardStore, IdempotencyItem,
    Inserted, ListQuery, StoreError,
};
use rusqlite::{Connection, OptionalExtension, params};

/// The guard's record, refused (as DynamoDB refuses the item) when it would not fit one item.
fn to_json(g: &Guard) -> Result<String, StoreError> {
    let record = serde_json::to_string(g).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    executor_lifecycle::limits::check_guard_item(&g.id, record.len())?;
    Ok(record)
}

/// A budget item as stored.
fn load_budget(conn: &Connection, key: &str) -> Result<Option<BudgetState>, StoreError> {
    conn.prepare_cached(
        "SELECT line, limit_usd_micros, reserved_usd_micros, spent_usd_micros, settled_executions
         FROM budgets WHERE key = ?1",
    )
    .and_then(|mut st| {
        st.query_row(params![key], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .optional()
    })
    .map_err(db_err)?
    .map(|(line, limit, reserved, spent, settled)| {
        let mut line: executor_lifecycle::budget::HoldLine =
            serde_json::from_str(&line).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        line.limit_usd_micros = limit;
        Ok(BudgetState {
            line,
            reserved_usd_micros: reserved,
            spent_usd_micros: spent,
            settled_executions: settled as u64,
        })
    })
    .transpose()
}

/// Reserves `hold` on each of its items (inside the insert's transaction), or the refusal of
/// the first item without room.
fn reserve(conn: &Connection, hold: &BudgetHold) -> Result<Option<BudgetRefusal>, StoreError> {
    let estimate = hold.reserved_usd_micros;
    for line in &hold.lines {
        let mut state =
            load_budget(conn, &line.key)?.unwrap_or_else(|| BudgetState::empty(line.clone()));
        state.line.limit_usd_micros = line.limit_usd_micros;
        if !state.fits(estimate) {
            return Ok(Some(BudgetRefusal {
                state,
                estimate_usd_micros: estimate,
            }));
        }
        let json = serde_json::to_string(line).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        exec(
            conn,
            "INSERT INTO budgets (key, line, limit_usd_micros, reserved_usd_micros, spent_usd_micros, settled_executions)
             VALUES (?1, ?2, ?3, ?4, 0, 0)
             ON CONFLICT (key) DO UPDATE SET limit_usd_micros = ?3,
               reserved_usd_micros = reserved_usd_micros + ?4",
            params![line.key, json, line.limit_usd_micros, estimate],
        )
        .map_err(db_err)?;
    }
    Ok(None)
}

/// Moves a settled hold's reservation to `spent` (inside the settling commit's transaction).
fn settle(conn: &Connection, hold: &BudgetHold) -> Result<(), StoreError> {
    let actual = hold.settled.map(|s| s.actual_usd_micros).unwrap_or(0);
    for line in &hold.lines {
        exec(
            conn,
            "UPDATE budgets SET reserved_usd_micros = reserved_usd_micros - ?2,
               spent_usd_micros = spent_usd_micros + ?3, settled_executions = settled_executions + 1
             WHERE key = ?1",
            params![line.key, hold.reserved_usd_micros, actual],
        )
        .map_err(db_err)?;
    }
    Ok(())
}

/// Reads a guard row and overlays the non-versioned attributes.
fn load(conn: &Connection, id: &str) -> Result<Option<Guard>, StoreError> {
    let row: Option<(String, bool)> = conn
        .prepare_cached("SELECT record, cancel_requested FROM executions WHERE id = ?1")
        .and_then(|mut st| {
            st.query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(db_err)?;
    let Some((record, cancel)) = row else {
        return Ok(None);
    };
    let mut g: Guard =
        serde_json::from_str(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    g.cancel_requested = cancel;
    let mut stmt = conn
        .prepare_cached(
            "SELECT callback_id FROM callbacks WHERE execution_id = ?1 ORDER BY received_at_ms, rowid",
        )
        .map_err(db_err)?;
    g.callbacks_received = stmt
        .query_map(params![id], |r| r.get::<_, String>(0))
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT at_ms, reason FROM callbacks_rejected WHERE execution_id = ?1 ORDER BY at_ms, rowid",
        )
        .map_err(db_err)?;
    g.callbacks_rejected = stmt
        .query_map(params![id], |r| {
            Ok(executor_lifecycle::RejectedCallback {
                at_ms: r.get(0)?,
                reason: r.get(1)?,
            })
        })
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT rerun_id FROM reruns WHERE execution_id = ?1 ORDER BY created_at_ms, rowid",
        )
        .map_err(db_err)?;
    g.reruns = stmt
        .query_map(params![id], |r| r.get::<_, String>(0))
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    g.reconcile_failures = conn
        .prepare_cached(
            "SELECT version, failures, first_failure_ms, last_failure_ms, reason
             FROM reconcile_failures WHERE execution_id = ?1",
        )
        .and_then(|mut st| {
            st.query_row(params![id], |r| {
                Ok(executor_lifecycle::ReconcileFailures {
                    version: r.get::<_, i64>(0)? as u64,
                    failures: r.get(1)?,
                    first_failure_ms: r.get(2)?,
                    last_failure_ms: r.get(3)?,
                    reason: r.get(4)?,
                })
            })
            .optional()
        })
        .map_err(db_err)?;
    Ok(Some(g))
}

fn load_many(conn: &Connection, ids: Vec<String>) -> Result<Vec<Guard>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(g) = load(conn, &id)? {
            out.push(g);
        }
    }
    Ok(out)
}

#[async_trait]
impl GuardStore for SqliteStore {
    async fn insert(
        &self,
        guard: &Guard,
        idem: Option<&IdempotencyItem>,
    ) -> Result<Inserted, StoreError> {
        let g = guard.clone();
        let idem = idem.cloned();
        let record = to_json(&g)?;
        self.with(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            if let Some(item) = &idem {
                let existing: Option<(String, String)> = tx
                    .query_row(
                        "SELECT execution_id, request_hash FROM idempotency WHERE tenant = ?1 AND key = ?2",
                        params![item.tenant, item.key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(db_err)?;
                if let Some((execution_id, request_hash)) = existing {
                    return Ok(Inserted::IdempotencyKeyTaken(IdempotencyItem {
                        tenant: item.tenant.clone(),
                        key: item.key.clone(),
                        execution_id,
                        request_hash,
                    }));
                }
                exec(&tx,
                    "INSERT INTO idempotency (tenant, key, execution_id, request_hash) VALUES (?1, ?2, ?3, ?4)",
                    params![item.tenant, item.key, item.execution_id, item.request_hash],
                )
                .map_err(db_err)?;
            }
            if let Some(original) = &g.rerun_of {
                // The link both ways in the same transaction: the original must exist.
                let n = exec(&tx,
                    "INSERT INTO reruns (execution_id, rerun_id, created_at_ms)
                     SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM executions WHERE id = ?1)",
                    params![original, g.id, g.created_at_ms],
                )
                .map_err(db_err)?;
                if n != 1 {
                    return Err(StoreError::Corrupt(format!("rerun of missing execution {original}")));
                }
            }
            if let Some(hold) = &g.budget
                && let Some(refusal) = reserve(&tx, hold)?
            {
                // Dropping the transaction rolls back the idempotency item and the rerun link.
                return Ok(Inserted::BudgetExceeded(refusal));
            }
            exec(&tx,
                "INSERT INTO executions (id, tenant, model, provider, status, version, created_at_ms, updated_at_ms,
                   next_due_ms, error_class, cost_usd_micros, outbox_pending, is_final, record, cancel_requested)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 0)",
                params![
                    g.id,
                    g.tenant,
                    g.model,
                    g.provider,
                    g.status().as_str(),
                    g.version() as i64,
                    g.created_at_ms,
                    g.updated_at_ms,
                    g.next_due_ms,
                    g.error_class().map(|c| c.as_str()),
                    g.hot.cost.as_ref().map(|c| c.provider_usd_micros),
                    g.outbox_awaits_sweep(),
                    g.status().is_final(),
                    record,
                ],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(Inserted::Created)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Guard>, StoreError> {
        let id = id.to_string();
        self.with(move |conn| load(conn, &id)).await
    }

    async fn insert_idempotency(&self, item: &IdempotencyItem) -> Result<Inserted, StoreError> {
        let item = item.clone();
        self.with(move |conn| {
            let n = exec(
                conn,
                "INSERT OR IGNORE INTO idempotency (tenant, key, execution_id, request_hash) VALUES (?1, ?2, ?3, ?4)",
                params![item.tenant, item.key, item.execution_id, item.request_hash],
            )
            .map_err(db_err)?;
            if n == 1 {
                return Ok(Inserted::Created);
            }
            let (execution_id, request_hash) = conn
                .query_row(
                    "SELECT execution_id, request_hash FROM idempotency WHERE tenant = ?1 AND key = ?2",
                    params![item.tenant, item.key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(db_err)?;
            Ok(Inserted::IdempotencyKeyTaken(IdempotencyItem {
                tenant: item.tenant,
                key: item.key,
                execution_id,
                request_hash,
            }))
        })
        .await
    }

    async fn find_idempotency(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<IdempotencyItem>, StoreError> {
        let (tenant, key) = (tenant.to_string(), key.to_string());
        self.with(move |conn| {
            conn.query_row(
                "SELECT execution_id, request_hash FROM idempotency WHERE tenant = ?1 AND key = ?2",
                params![tenant, key],
                |r| {
                    Ok(IdempotencyItem {
                        tenant: tenant.clone(),
                        key: key.clone(),
                        execution_id: r.get(0)?,
                        request_hash: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn commit(&self, expected: u64, next: &Guard) -> Result<(), CommitError> {
        // One step, or two committed in one write (a terminal transition and its finalize).
        if !(expected + 1..=expected + 2).contains(&next.version()) {
            return Err(CommitError::Store(StoreError::Corrupt(format!(
                "commit of version {} over {expected}",
                next.version()
            ))));
        }
        let g = next.clone();
        let record = to_json(&g)?;
        let settles = g
            .budget
            .as_ref()
            .filter(|h| h.settles_at(g.version()))
            .cloned();
        let changed = self
            .with(move |conn| {
                let tx = conn.transaction().map_err(db_err)?;
                let mut st = tx.prepare_cached(
                    "UPDATE executions SET status = ?1, version = ?2, updated_at_ms = ?3, next_due_ms = ?4,
                       error_class = ?5, cost_usd_micros = ?6, outbox_pending = ?7, is_final = ?8, record = ?9
                     WHERE id = ?10 AND version = ?11",
                ).map_err(db_err)?;
                let changed = st.execute(
                    params![
                        g.status().as_str(),
                        g.version() as i64,
                        g.updated_at_ms,
                        g.next_due_ms,
                        g.error_class().map(|c| c.as_str()),
                        g.hot.cost.as_ref().map(|c| c.provider_usd_micros),
                        g.outbox_awaits_sweep(),
                        g.status().is_final(),
                        record,
                        g.id,
                        expected as i64,
                    ],
                )
                .map_err(db_err)?;
                drop(st);
                if changed == 1
                    && let Some(hold) = &settles
                {
                    settle(&tx, hold)?;
                }
                tx.commit().map_err(db_err)?;
                Ok(changed)
            })
            .await?;
        if changed == 1 {
            Ok(())
        } else {
            Err(CommitError::Conflict)
        }
    }

    async fn budget(&self, key: &str) -> Result<Option<BudgetState>, StoreError> {
        let key = key.to_string();
        self.with(move |conn| load_budget(conn, &key)).await
    }

    async fn clear_outbox(&self, id: &str, version: u64) -> Result<(), StoreError> {
        let id = id.to_string();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            if let Some(mut g) = load(&tx, &id)?
                && g.version() == version
                && !g.outbox.is_empty()
            {
                g.outbox.clear();
                exec(&tx,
                    "UPDATE executions SET record = ?1, outbox_pending = 0 WHERE id = ?2 AND version = ?3",
                    params![to_json(&g)?, id, version as i64],
                )
                .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn clear_outbox_of(&self, cleared: &Guard) -> Result<(), StoreError> {
        if !cleared.outbox.is_empty() {
            return self.clear_outbox(&cleared.id, cleared.version()).await;
        }
        // The cleared guard is the committed one minus its outbox: write it at the same version
        // (no read). A version that moved on means a later commit already cleared it.
        let (id, version, record) = (
            cleared.id.clone(),
            cleared.version() as i64,
            to_json(cleared)?,
        );
        self.with(move |conn| {
            conn.prepare_cached(
                "UPDATE executions SET record = ?1, outbox_pending = 0 WHERE id = ?2 AND version = ?3",
            )
            .and_then(|mut st| st.execute(params![record, id, version]))
            .map(|_| ())
            .map_err(db_err)
        })
        .await
    }

    async fn request_cancel(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.with(move |conn| {
            exec(
                conn,
                "UPDATE executions SET cancel_requested = 1 WHERE id = ?1",
                params![id],
            )
            .map(|_| ())
            .map_err(db_err)
        })
        .await
    }

    async fn record_callback(&self, id: &str, callback_id: &str) -> Result<bool, StoreError> {
        let (id, cb) = (id.to_string(), callback_id.to_string());
        let now = self.now();
        self.with(move |conn| {
            exec(conn,
                "INSERT OR IGNORE INTO callbacks (execution_id, callback_id, received_at_ms) VALUES (?1, ?2, ?3)",
                params![id, cb, now],
            )
            .map(|n| n == 1)
            .map_err(db_err)
        })
        .await
    }

    async fn record_rejected_callback(
        &self,
        id: &str,
        at_ms: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let (id, reason) = (id.to_string(), reason.to_string());
        let kept = executor_lifecycle::REJECTED_CALLBACKS_KEPT as i64;
        self.with(move |conn| {
            exec(
                conn,
                "INSERT INTO callbacks_rejected (execution_id, at_ms, reason)
                 SELECT ?1, ?2, ?3
                 WHERE EXISTS (SELECT 1 FROM executions WHERE id = ?1)
                   AND (SELECT COUNT(*) FROM callbacks_rejected WHERE execution_id = ?1) < ?4",
                params![id, at_ms, reason, kept],
            )
            .map(|_| ())
            .map_err(db_err)
        })
        .await
    }

    async fn set_reconcile_failures(
        &self,
        id: &str,
        failures: Option<&executor_lifecycle::ReconcileFailures>,
    ) -> Result<(), StoreError> {
        let (id, failures) = (id.to_string(), failures.cloned());
        self.with(move |conn| {
            match failures {
                Some(f) => exec(
                    conn,
                    "INSERT OR REPLACE INTO reconcile_failures
                       (execution_id, version, failures, first_failure_ms, last_failure_ms, reason)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM executions WHERE id = ?1)",
                    params![
                        id,
                        f.version as i64,
                        f.failures,
                        f.first_failure_ms,
                        f.last_failure_ms,
                        f.reason
                    ],
                ),
                None => exec(
                    conn,
                    "DELETE FROM reconcile_failures WHERE execution_id = ?1",
                    params![id],
                ),
            }
            .map(|_| ())
            .map_err(db_err)
        })
        .await
    }

    async fn overdue(&self, due_before_ms: i64, limit: usize) -> Result<Vec<Guard>, StoreError> {
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM executions WHERE is_final = 0 AND next_due_ms < ?1
                     UNION
                     SELECT id FROM executions WHERE outbox_pending = 1 AND updated_at_ms < ?1
                     LIMIT ?2",
                )
                .map_err(db_err)?;
            let ids: Vec<String> = stmt
                .query_map(params![due_before_ms, limit as i64], |r| r.get(0))
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            let mut guards = load_many(conn, ids)?;
            guards.sort_by_key(|g| g.next_due_ms);
            Ok(guards)
        })
        .await
    }

    async fn list(&self, q: &ListQuery) -> Result<Vec<Guard>, StoreError> {
        let q = q.clone();
        self.with(move |conn| {
            let mut sql = String::from("SELECT id FROM executions WHERE 1 = 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(t) = &q.tenant {
                args.push(t.clone().into());
                sql.push_str(&format!(" AND tenant = ?{}", args.len()));
            }
            if !q.statuses.is_empty() {
                let mut marks = Vec::new();
                for s in &q.statuses {
                    args.push(s.as_str().to_string().into());
                    marks.push(format!("?{}", args.len()));
                }
                sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
            }
            if !q.outcomes.is_empty() {
                let mut marks = Vec::new();
                for s in &q.outcomes {
                    args.push(s.as_str().to_string().into());
                    marks.push(format!("?{}", args.len()));
                }
                sql.push_str(&format!(
                    " AND (json_extract(record, '$.hot.outcome') IS NULL OR json_extract(record, '$.hot.outcome') IN ({}))",
                    marks.join(", ")
                ));
            }
            if let Some(attempted) = q.delivery_attempted {
                args.push(i64::from(attempted).into());
                sql.push_str(&format!(
                    " AND (COALESCE(json_extract(record, '$.hot.delivery_attempts'), 0) > 0) = ?{}",
                    args.len()
                ));
            }
            if let Some(m) = &q.model {
                args.push(m.clone().into());
                sql.push_str(&format!(" AND model = ?{}", args.len()));
            }
            if let Some(p) = &q.provider {
                args.push(p.clone().into());
                sql.push_str(&format!(" AND provider = ?{}", args.len()));
            }
            if let Some(after) = q.created_after_ms {
                args.push(after.into());
                sql.push_str(&format!(" AND created_at_ms >= ?{}", args.len()));
            }
            if let Some(before) = q.created_before_ms {
                args.push(before.into());
                sql.push_str(&format!(" AND created_at_ms < ?{}", args.len()));
            }
            if q.with_error {
                sql.push_str(" AND error_class IS NOT NULL");
            }
            if q.parked {
                // Guard::parked: a record at the current version, of an execution that still
                // needs work, with enough failures.
                args.push(i64::from(executor_lifecycle::engine::RECONCILE_PARK_AFTER).into());
                sql.push_str(&format!(
                    " AND (is_final = 0 OR outbox_pending = 1) AND EXISTS (SELECT 1 FROM reconcile_failures r
                       WHERE r.execution_id = executions.id AND r.version = executions.version
                         AND r.failures >= ?{})",
                    args.len()
                ));
            }
            if let Some(class) = q.error_class {
                args.push(class.as_str().to_string().into());
                sql.push_str(&format!(" AND error_class = ?{}", args.len()));
            }
            if let Some((at, id)) = &q.before {
                args.push((*at).into());
                let a = args.len();
                args.push(id.clone().into());
                let b = args.len();
                sql.push_str(&format!(
                    " AND (created_at_ms < ?{a} OR (created_at_ms = ?{a} AND id < ?{b}))"
                ));
            }
            args.push((q.limit.max(1) as i64).into());
            sql.push_str(&format!(
                " ORDER BY created_at_ms DESC, id DESC LIMIT ?{}",
                args.len()
            ));
            let mut stmt = conn.prepare(&sql).map_err(db_err)?;
            let ids: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(args), |r| r.get(0))
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            load_many(conn, ids)
        })
        .await
    }
}
