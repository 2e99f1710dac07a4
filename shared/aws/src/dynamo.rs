//! The guard/index store on DynamoDB: one item per execution (`pk = ex#{id}`), the single
//! commit point is `UpdateItem ... ConditionExpression version = :expected`. Idempotency keys
//! (`idem#{tenant}#{key}`) and API keys (`key#{hash}`) are items of their own.
//!
//! Key schema and indexes (the SAM template declares the same):
//! - table: hash key `pk` (S); TTL attribute `expires_at`.
//! - GSI `by-tenant`: hash `tenant` (S), range `created_sk` (S, `{created_at_ms:013}#{id}`),
//!   projection KEYS_ONLY — listing newest first with a cursor, each page's items read with
//!   `BatchGetItem`. Its keys never change, so it is written once per execution (at the
//!   insert), not on every commit as a projection of the record would be.
//!   API key items (`key#{hash}`) share it under the reserved hash key [`API_KEYS_PARTITION`]
//!   (`created_sk = {created_at_ms:013}#{hash}`), so `executor keys list` is a Query, not a Scan.
//! - GSI `by-due`: hash `due_shard` (S, `due#{0..63}` by a hash of the execution id, so the
//!   reconciler's index is not one hot partition; present only on items that still need
//!   work), range `due_at` (N) — the reconciler's overdue query. Sparse: final items drop out.
//!   Projection KEYS_ONLY (`pk`, `due_shard`, `due_at`): the index is written only when an
//!   execution's due time changes, its items are ~100 bytes (1 WRU), and the reconciler reads
//!   the few overdue executions it acts on with a consistent `GetItem` each.

use crate::config::{AwsConfig, AwsSetupError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType, TransactWriteItem, Update,
};
use executor_lifecycle::budget::HoldLine;
use executor_lifecycle::{
    BudgetHold, BudgetRefusal, BudgetState, Clock, CommitError, Guard, GuardStore, IdempotencyItem,
    Inserted, ListQuery, StoreError,
};
use std::collections::HashMap;
use std::sync::Arc;

/// GSI names.
pub const BY_TENANT: &str = "by-tenant";
/// GSI names.
pub const BY_DUE: &str = "by-due";
/// The `by-tenant` partition that holds every API key item (`tenant` = this, the key's own
/// tenant in `key_tenant`). Tenant names cannot contain `#`, so no tenant's listing ever reads
/// it.
pub const API_KEYS_PARTITION: &str = "#api-keys";
/// Partitions of the `by-due` index: an execution's items spread over `due#0..due#63`, so the
/// index's write rate (every commit of a live execution moves its `due_at`: a delete and a put
/// in the index) stays under one partition's 1,000 writes/s at the capacity plan's peak
/// (docs/aws.md: ≈ 20,000 index writes/s, ≈ 310 per key); the reconciler queries each. Only
/// ever raise it: items written under a smaller count stay on shards the reconciler still
/// queries, and move to their new shard at their next commit.
pub const DUE_SHARDS: u32 = 64;

/// Concurrent index queries and item reads of one reconcile pass.
const OVERDUE_CONCURRENCY: usize = 8;

/// The `by-due` partition of an execution.
pub fn due_shard(id: &str) -> String {
    // FNV-1a: stable across processes and versions (std's hasher is not).
    let mut h: u32 = 0x811c_9dc5;
    for b in id.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("due#{}", h % DUE_SHARDS)
}

/// The attribute a callback body kept beside the guard is stored in: this prefix and the
/// callback id (binary, compressed; written with the id, never by a commit).
const CALLBACK_BODY_PREFIX: &str = "cbody_";

/// Final items expire after this many days (TTL).
const RETENTION_DAYS: i64 = 30;

type Item = HashMap<String, AttributeValue>;

/// DynamoDB guard store.
pub struct DynamoGuardStore {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
    /// The `by-due` index's bucket (ms; 0: exact due times). [`DUE_BUCKET_MS`] scaled in a
    /// deployment.
    due_bucket_ms: std::sync::atomic::AtomicI64,
}

/// The `by-due` index's bucket in a deployment (before the lifecycle's `time_scale`): the
/// reconciler finds an overdue execution at most this much later, and an execution polled
/// every few seconds moves its index entry about once a minute instead of every commit.
pub const DUE_BUCKET_MS: u64 = 60_000;

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("dynamodb: {e}"))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn ex_pk(id: &str) -> String {
    format!("ex#{id}")
}

/// The attributes a commit writes (never `cancel_requested`, the callbacks or
/// `reconcile_failures`).
fn versioned_attrs(
    g: &Guard,
    due_bucket_ms: i64,
) -> Result<Vec<(&'static str, Option<AttributeValue>)>, StoreError> {
    let record = serde_json::to_string(&g.to_plain_json()?)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    executor_lifecycle::limits::check_guard_item(&g.id, record.len())?;
    let needs_work = !g.status().is_final() || !g.outbox.is_empty();
    let due_at = if !g.outbox_awaits_sweep() {
        g.next_due_ms
    } else {
        g.next_due_ms.min(g.updated_at_ms)
    };
    // The index's sort key is the due time rounded up to its bucket: a commit that moves the
    // due time inside the bucket leaves the index unwritten (an index key change is a delete
    // and a put there), and the reconciler, which reads only keys past their bucket, never
    // acts early — at most one bucket late.
    let due_at = bucket_up(due_at, due_bucket_ms);
    Ok(vec![
        ("status", Some(s(g.status().as_str()))),
        ("version", Some(n(g.version() as i64))),
        ("updated_at", Some(n(g.updated_at_ms))),
        ("next_due", Some(n(g.next_due_ms))),
        // The guard, zstd-compressed (a binary attribute counts its bytes): every commit
        // rewrites the item, and a write costs a unit per KB of it.
        (
            "record",
            Some(AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
                executor_lifecycle::blobs::encode_bytes(record.as_bytes())?,
            ))),
        ),
        (
            "outbox_pending",
            Some(AttributeValue::Bool(g.outbox_awaits_sweep())),
        ),
        ("error_class", g.error_class().map(|c| s(c.as_str()))),
        (
            "cost_usd_micros",
            g.hot.cost.as_ref().map(|c| n(c.provider_usd_micros)),
        ),
        ("due_shard", needs_work.then(|| s(due_shard(&g.id)))),
        ("due_at", needs_work.then(|| n(due_at))),
        (
            "expires_at",
            g.status()
                .is_final()
                .then(|| n(g.updated_at_ms / 1000 + RETENTION_DAYS * 86_400)),
        ),
    ])
}

/// `t` rounded up to a multiple of `bucket` (0: unchanged).
fn bucket_up(t: i64, bucket: i64) -> i64 {
    if bucket <= 0 {
        t
    } else {
        t.div_euclid(bucket)
            .saturating_add(i64::from(t.rem_euclid(bucket) != 0))
            .saturating_mul(bucket)
    }
}

/// Parses an execution item into a guard, overlaying the non-versioned attributes.
fn guard_of(item: &Item) -> Result<Guard, StoreError> {
    let mut g: Guard = match item.get("record") {
        // Compressed JSON; plain JSON in items written before.
        Some(AttributeValue::B(b)) => executor_lifecycle::blobs::decode(b.as_ref())?,
        Some(AttributeValue::S(text)) => {
            serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))?
        }
        _ => return Err(StoreError::Corrupt("item without record".into())),
    };
    g.cancel_requested = item
        .get("cancel_requested")
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false);
    g.callbacks_received = item
        .get("callback_ids")
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|x| x.as_s().ok().cloned()).collect())
        .unwrap_or_default();
    g.callback_bodies = item
        .iter()
        .filter_map(|(k, v)| {
            let id = k.strip_prefix(CALLBACK_BODY_PREFIX)?;
            Some((id.to_string(), v.as_b().ok()?.as_ref().to_vec()))
        })
        .collect();
    g.callbacks_rejected = item
        .get("callbacks_rejected")
        .and_then(|v| v.as_l().ok())
        .map(|l| {
            l.iter()
                .filter_map(|x| x.as_s().ok())
                .filter_map(|s| serde_json::from_str(s).ok())
                .collect()
        })
        .unwrap_or_default();
    g.reruns = item
        .get("rerun_ids")
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|x| x.as_s().ok().cloned()).collect())
        .unwrap_or_default();
    g.reconcile_failures = match get_s(item, "reconcile_failures") {
        Some(s) => Some(serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))?),
        None => None,
    };
    Ok(g)
}

impl DynamoGuardStore {
    /// A store on `table`.
    pub fn new(client: Client, table: String, clock: Arc<dyn Clock>) -> DynamoGuardStore {
        DynamoGuardStore {
            client,
            table,
            clock,
            due_bucket_ms: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Rounds the `by-due` index's due times up to `ms` (0: exact).
    pub fn set_due_bucket_ms(&self, ms: u64) {
        self.due_bucket_ms.store(
            i64::try_from(ms).unwrap_or(i64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn bucket(&self) -> i64 {
        self.due_bucket_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Checks the table exists.
    pub async fn check(&self, cfg: &AwsConfig) -> Result<(), AwsSetupError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                AwsSetupError(format!(
                    "DynamoDB table '{}' not found at {}: {}",
                    self.table,
                    cfg.endpoint(),
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                ))
            })
    }

    /// Creates the table with its indexes if it does not exist (tests and local mode).
    pub async fn create_table_if_missing(&self) -> Result<(), StoreError> {
        if self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        let attr = |name: &str, t: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(t)
                .build()
                .map_err(err)
        };
        let key = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
                .map_err(err)
        };
        let gsi = |name: &str,
                   hash: &str,
                   range: &str,
                   projection: ProjectionType|
         -> Result<GlobalSecondaryIndex, StoreError> {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(hash, KeyType::Hash)?)
                .key_schema(key(range, KeyType::Range)?)
                .projection(Projection::builder().projection_type(projection).build())
                .build()
                .map_err(err)
        };
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("tenant", ScalarAttributeType::S)?)
            .attribute_definitions(attr("created_sk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("due_shard", ScalarAttributeType::S)?)
            .attribute_definitions(attr("due_at", ScalarAttributeType::N)?)
            .key_schema(key("pk", KeyType::Hash)?)
            .global_secondary_indexes(gsi(
                BY_TENANT,
                "tenant",
                "created_sk",
                ProjectionType::KeysOnly,
            )?)
            .global_secondary_indexes(gsi(
                BY_DUE,
                "due_shard",
                "due_at",
                ProjectionType::KeysOnly,
            )?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
    }

    /// Registers an API key hash for a tenant. The item also joins the reserved
    /// [`API_KEYS_PARTITION`] of the `by-tenant` index (`created_sk = {created_at:013}#{hash}`),
    /// which is how [`DynamoGuardStore::list_api_keys`] finds every key without a Scan.
    pub async fn add_api_key(&self, tenant: &str, key_hash: &str) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("key#{key_hash}")))
            .item("key_tenant", s(tenant))
            .item("created_at", n(now))
            .item("tenant", s(API_KEYS_PARTITION))
            .item("created_sk", s(format!("{now:013}#{key_hash}")))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
    }

    /// Every API key registered by [`DynamoGuardStore::add_api_key`]: `(key hash, tenant,
    /// created_at_ms)`, oldest first. One Query of the reserved `by-tenant` partition (paged),
    /// reading only key items; an operator command, never on a request path.
    pub async fn list_api_keys(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_TENANT)
                .key_condition_expression("tenant = :t")
                .expression_attribute_values(":t", s(API_KEYS_PARTITION))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| err(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
            // The index holds keys only: the key items themselves, in one batch per page.
            let pks: Vec<String> = page
                .items()
                .iter()
                .filter_map(|i| get_s(i, "pk").map(str::to_string))
                .collect();
            let items = self.batch_get(&pks).await?;
            for item in items.iter().flatten() {
                let Some(hash) = get_s(item, "pk").and_then(|p| p.strip_prefix("key#")) else {
                    continue;
                };
                let created = item
                    .get("created_at")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                keys.push((
                    hash.to_string(),
                    get_s(item, "key_tenant").unwrap_or_default().to_string(),
                    created,
                ));
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(keys)
    }

    /// Deletes the API key with this hash; false if there was none. Warm functions that looked
    /// the key up keep accepting it for at most their key cache's lifetime (60 s).
    pub async fn revoke_api_key(&self, key_hash: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("key#{key_hash}")))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| err(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        Ok(out.attributes().is_some_and(|a| !a.is_empty()))
    }

    /// The tenant of an API key hash.
    pub async fn tenant_for_key_hash(&self, key_hash: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("key#{key_hash}")))
            .send()
            .await
            .map_err(|e| err(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        Ok(out
            .item()
            .and_then(|i| get_s(i, "key_tenant"))
            .map(str::to_string))
    }

    /// The items of `pks` (consistent reads, 100 per `BatchGetItem`, unprocessed keys asked
    /// again), in the order of `pks`; `None` for one that does not exist.
    async fn batch_get(&self, pks: &[String]) -> Result<Vec<Option<Item>>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut found: HashMap<String, Item> = HashMap::new();
        for chunk in pks.chunks(100) {
            let mut keys: Vec<Item> = chunk
                .iter()
                .map(|pk| HashMap::from([("pk".to_string(), s(pk))]))
                .collect();
            let mut tries = 0;
            while !keys.is_empty() {
                tries += 1;
                if tries > 10 {
                    return Err(StoreError::Unavailable(
                        "BatchGetItem left keys unprocessed 10 times".into(),
                    ));
                }
                let ka = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .build()
                    .map_err(err)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, ka)
                    .send()
                    .await
                    .map_err(|e| err(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    if let Some(pk) = get_s(item, "pk") {
                        found.insert(pk.to_string(), item.clone());
                    }
                }
                if let Some(left) = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .filter(|k| !k.is_empty())
                {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << tries.min(5))).await;
                    keys = left;
                }
            }
        }
        Ok(pks.iter().map(|pk| found.remove(pk)).collect())
    }

    async fn get_item(&self, pk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| err(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        Ok(out.item().cloned())
    }

    /// The update expression, names and values that write the versioned attributes of `g`.
    #[allow(clippy::type_complexity)]
    fn versioned_update(
        &self,
        g: &Guard,
        expected: u64,
    ) -> Result<(String, HashMap<String, String>, Item), StoreError> {
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        for (i, (attr, value)) in versioned_attrs(g, self.bucket())?.into_iter().enumerate() {
            names.insert(format!("#a{i}"), attr.to_string());
            match value {
                Some(v) => {
                    sets.push(format!("#a{i} = :v{i}"));
                    values.insert(format!(":v{i}"), v);
                }
                None => removes.push(format!("#a{i}")),
            }
        }
        values.insert(":expected".into(), n(expected as i64));
        names.insert("#version".into(), "version".into());
        let mut expr = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expr.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        Ok((expr, names, values))
    }

    /// A conditional update of the versioned attributes of `g` where `version = expected`.
    async fn update_versioned(&self, g: &Guard, expected: u64) -> Result<(), CommitError> {
        let (expr, names, values) = self.versioned_update(g, expected)?;
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(ex_pk(&g.id)))
            .update_expression(expr)
            .condition_expression("#version = :expected")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(CommitError::Conflict)
            }
            Err(e) => Err(CommitError::Store(err(
                aws_sdk_dynamodb::error::DisplayErrorContext(&e),
            ))),
        }
    }

    /// The commit that settles a budget hold: the guard's conditional update and each budget
    /// item's move from reserved to spent, in one transaction.
    async fn commit_settling(
        &self,
        g: &Guard,
        expected: u64,
        hold: &BudgetHold,
    ) -> Result<(), CommitError> {
        let (expr, names, values) = self.versioned_update(g, expected)?;
        let guard_update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(ex_pk(&g.id)))
            .update_expression(expr)
            .condition_expression("#version = :expected")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| CommitError::Store(err(e)))?;
        let mut tx = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(guard_update).build());
        let reserved = hold.reserved_usd_micros;
        let actual = hold.settled.map(|s| s.actual_usd_micros).unwrap_or(0);
        for line in &hold.lines {
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(budget_pk(&line.key)))
                .update_expression(
                    "ADD reserved_usd_micros :unreserve, used_usd_micros :delta, spent_usd_micros :actual, settled_executions :one",
                )
                .expression_attribute_values(":unreserve", n(-reserved))
                .expression_attribute_values(":delta", n(actual - reserved))
                .expression_attribute_values(":actual", n(actual))
                .expression_attribute_values(":one", n(1))
                .build()
                .map_err(|e| CommitError::Store(err(e)))?;
            tx = tx.transact_items(TransactWriteItem::builder().update(update).build());
        }
        match tx.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Canceled because another commit won the version (a conflict), or for a
                // transient reason (a concurrent transaction on a budget item): the stored
                // version tells which.
                if e.as_service_error()
                    .is_some_and(|s| s.is_transaction_canceled_exception())
                    && self
                        .get(&g.id)
                        .await?
                        .is_none_or(|now| now.version() != expected)
                {
                    return Err(CommitError::Conflict);
                }
                Err(CommitError::Store(err(
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e),
                )))
            }
        }
    }

    /// The update that reserves `estimate` on a budget item if its `used` (spent + reserved)
    /// leaves room under the hold's limit.
    fn reserve_update(&self, line: &HoldLine, estimate: i64) -> Result<Update, StoreError> {
        let line_json =
            serde_json::to_string(line).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // fits: limit - used > 0 and limit - used >= estimate, i.e. used <= limit - max(estimate, 1).
        let max_used = line.limit_usd_micros - estimate.max(1);
        Update::builder()
            .table_name(&self.table)
            .key("pk", s(budget_pk(&line.key)))
            .update_expression(
                "SET #line = :line, limit_usd_micros = :limit ADD used_usd_micros :e, reserved_usd_micros :e, spent_usd_micros :zero, settled_executions :zero",
            )
            .condition_expression("attribute_not_exists(used_usd_micros) OR used_usd_micros <= :max")
            .expression_attribute_names("#line", "line")
            .expression_attribute_values(":line", s(line_json))
            .expression_attribute_values(":limit", n(line.limit_usd_micros))
            .expression_attribute_values(":e", n(estimate))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":max", n(max_used))
            .build()
            .map_err(err)
    }

    /// The first item of `hold` without room for its estimate, as stored now.
    async fn refusal(&self, hold: &BudgetHold) -> Result<Option<BudgetRefusal>, StoreError> {
        for line in &hold.lines {
            let mut state = self
                .budget(&line.key)
                .await?
                .unwrap_or_else(|| BudgetState::empty(line.clone()));
            state.line.limit_usd_micros = line.limit_usd_micros;
            if !state.fits(hold.reserved_usd_micros) {
                return Ok(Some(BudgetRefusal {
                    state,
                    estimate_usd_micros: hold.reserved_usd_micros,
                }));
            }
        }
        Ok(None)
    }
}

fn budget_pk(key: &str) -> String {
    format!("budget#{key}")
}

#[async_trait]
impl GuardStore for DynamoGuardStore {
    async fn insert(
        &self,
        guard: &Guard,
        idem: Option<&IdempotencyItem>,
    ) -> Result<Inserted, StoreError> {
        let mut item: Item = HashMap::new();
        item.insert("pk".into(), s(ex_pk(&guard.id)));
        item.insert("tenant".into(), s(&guard.tenant));
        item.insert("model".into(), s(&guard.model));
        item.insert("provider".into(), s(&guard.provider));
        item.insert("created_at".into(), n(guard.created_at_ms));
        item.insert(
            "created_sk".into(),
            s(format!("{:013}#{}", guard.created_at_ms, guard.id)),
        );
        item.insert("cancel_requested".into(), AttributeValue::Bool(false));
        for (k, v) in versioned_attrs(guard, self.bucket())? {
            if let Some(v) = v {
                item.insert(k.into(), v);
            }
        }
        let put = |item: Item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(err)
        };
        let mut tx = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put(item)?).build());
        if let Some(i) = idem {
            let mut it: Item = HashMap::new();
            it.insert("pk".into(), s(format!("idem#{}#{}", i.tenant, i.key)));
            it.insert("execution_id".into(), s(&i.execution_id));
            it.insert("request_hash".into(), s(&i.request_hash));
            it.insert(
                "expires_at".into(),
                n(self.clock.now_ms() / 1000 + RETENTION_DAYS * 86_400),
            );
            tx = tx.transact_items(TransactWriteItem::builder().put(put(it)?).build());
        }
        if let Some(hold) = &guard.budget {
            // An estimate above an item's limit never fits: refused without a write.
            if hold
                .lines
                .iter()
                .any(|l| !BudgetState::empty(l.clone()).fits(hold.reserved_usd_micros))
            {
                if let Some(i) = idem
                    && let Some(existing) = self.find_idempotency(&i.tenant, &i.key).await?
                {
                    return Ok(Inserted::IdempotencyKeyTaken(existing));
                }
                if let Some(refusal) = self.refusal(hold).await? {
                    return Ok(Inserted::BudgetExceeded(refusal));
                }
            }
            for line in &hold.lines {
                let update = self.reserve_update(line, hold.reserved_usd_micros)?;
                tx = tx.transact_items(TransactWriteItem::builder().update(update).build());
            }
        }
        if let Some(original) = &guard.rerun_of {
            // The link both ways in the same transaction: the rerun's `rerun_of` (in its
            // record) and the original's `rerun_ids` (an attribute commits never write).
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(ex_pk(original)))
                .update_expression(
                    "SET rerun_ids = list_append(if_not_exists(rerun_ids, :empty), :one)",
                )
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(rerun_ids) OR size(rerun_ids) < :max)",
                )
                .expression_attribute_values(":empty", AttributeValue::L(vec![]))
                .expression_attribute_values(":one", AttributeValue::L(vec![s(&guard.id)]))
                .expression_attribute_values(
                    ":max",
                    n(executor_lifecycle::MAX_RERUNS as i64),
                )
                .build()
                .map_err(err)?;
            tx = tx.transact_items(TransactWriteItem::builder().update(update).build());
        }
        match tx.send().await {
            Ok(_) => Ok(Inserted::Created),
            Err(e) => {
                if let (Some(i), true) = (
                    idem,
                    e.as_service_error()
                        .is_some_and(|s| s.is_transaction_canceled_exception()),
                ) {
                    if let Some(existing) = self.find_idempotency(&i.tenant, &i.key).await? {
                        return Ok(Inserted::IdempotencyKeyTaken(existing));
                    }
                }
                if let Some(hold) = &guard.budget
                    && e.as_service_error()
                        .is_some_and(|s| s.is_transaction_canceled_exception())
                    && let Some(refusal) = self.refusal(hold).await?
                {
                    return Ok(Inserted::BudgetExceeded(refusal));
                }
                Err(err(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
            }
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Guard>, StoreError> {
        match self.get_item(ex_pk(id)).await? {
            Some(item) => guard_of(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn insert_idempotency(&self, i: &IdempotencyItem) -> Result<Inserted, StoreError> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("idem#{}#{}", i.tenant, i.key)))
            .item("execution_id", s(&i.execution_id))
            .item("request_hash", s(&i.request_hash))
            .item(
                "expires_at",
                n(self.clock.now_ms() / 1000 + RETENTION_DAYS * 86_400),
            )
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match r {
            Ok(_) => Ok(Inserted::Created),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                match self.find_idempotency(&i.tenant, &i.key).await? {
                    Some(existing) => Ok(Inserted::IdempotencyKeyTaken(existing)),
                    None => Err(StoreError::Unavailable(format!(
                        "idempotency key {} taken and gone",
                        i.key
                    ))),
                }
            }
            Err(e) => Err(err(aws_sdk_dynamodb::error::DisplayErrorContext(&e))),
        }
    }

    async fn find_idempotency(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<IdempotencyItem>, StoreError> {
        Ok(self
            .get_item(format!("idem#{tenant}#{key}"))
            .await?
            .map(|item| IdempotencyItem {
                tenant: tenant.to_string(),
                key: key.to_string(),
                execution_id: get_s(&item, "execution_id").unwrap_or_default().to_string(),
                request_hash: get_s(&item, "request_hash").unwrap_or_default().to_string(),
            }))
    }

    async fn commit(&self, expected: u64, next: &Guard) -> Result<(), CommitError> {
        // One step, or two committed in one write (a terminal transition and its finalize).
        if !(expected + 1..=expected + 2).contains(&next.version()) {
            return Err(CommitError::Store(StoreError::Corrupt(format!(
                "commit of version {} over {expected}",
                next.version()
            ))));
        }
        match next
            .budget
            .as_ref()
            .filter(|h| h.settles_at(next.version()))
        {
            Some(hold) => self.commit_settling(next, expected, hold).await,
            None => self.update_versioned(next, expected).await,
        }
    }

    async fn budget(&self, key: &str) -> Result<Option<BudgetState>, StoreError> {
        let Some(item) = self.get_item(budget_pk(key)).await? else {
            return Ok(None);
        };
        let num = |k: &str| -> i64 {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let line = get_s(&item, "line")
            .ok_or_else(|| StoreError::Corrupt(format!("budget item {key} without line")))?;
        let mut line: HoldLine =
            serde_json::from_str(line).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        line.limit_usd_micros = num("limit_usd_micros");
        Ok(Some(BudgetState {
            line,
            reserved_usd_micros: num("reserved_usd_micros"),
            spent_usd_micros: num("spent_usd_micros"),
            settled_executions: num("settled_executions") as u64,
        }))
    }

    async fn clear_outbox(&self, id: &str, version: u64) -> Result<(), StoreError> {
        let Some(mut g) = self.get(id).await? else {
            return Ok(());
        };
        if g.version() != version || g.outbox.is_empty() {
            return Ok(());
        }
        g.outbox.clear();
        match self.update_versioned(&g, version).await {
            Ok(()) | Err(CommitError::Conflict) => Ok(()),
            Err(CommitError::Store(e)) => Err(e),
        }
    }

    /// One conditional write (no read): the guard as committed, with its outbox emptied.
    async fn clear_outbox_of(&self, cleared: &Guard) -> Result<(), StoreError> {
        if !cleared.outbox.is_empty() {
            return self.clear_outbox(&cleared.id, cleared.version()).await;
        }
        match self.update_versioned(cleared, cleared.version()).await {
            Ok(()) | Err(CommitError::Conflict) => Ok(()),
            Err(CommitError::Store(e)) => Err(e),
        }
    }

    async fn request_cancel(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(ex_pk(id)))
            .update_expression("SET cancel_requested = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
    }

    async fn record_callback_with_body(
        &self,
        id: &str,
        callback_id: &str,
        body: &[u8],
    ) -> Result<Option<bool>, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(ex_pk(id)))
            .update_expression("SET callback_ids = list_append(if_not_exists(callback_ids, :empty), :one), #body = :body ADD callback_set :set")
            .condition_expression("attribute_exists(pk) AND NOT contains(callback_set, :id)")
            .expression_attribute_names("#body", format!("{CALLBACK_BODY_PREFIX}{callback_id}"))
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(":one", AttributeValue::L(vec![s(callback_id)]))
            .expression_attribute_values(":set", AttributeValue::Ss(vec![callback_id.to_string()]))
            .expression_attribute_values(":id", s(callback_id))
            .expression_attribute_values(
                ":body",
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(body.to_vec())),
            )
            .send()
            .await;
        match r {
            Ok(_) => Ok(Some(true)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Some(false))
            }
            Err(e) => Err(err(aws_sdk_dynamodb::error::DisplayErrorContext(&e))),
        }
    }

    async fn record_callback(&self, id: &str, callback_id: &str) -> Result<bool, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(ex_pk(id)))
            .update_expression("SET callback_ids = list_append(if_not_exists(callback_ids, :empty), :one) ADD callback_set :set")
            .condition_expression("attribute_exists(pk) AND NOT contains(callback_set, :id)")
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(":one", AttributeValue::L(vec![s(callback_id)]))
            .expression_attribute_values(":set", AttributeValue::Ss(vec![callback_id.to_string()]))
            .expression_attribute_values(":id", s(callback_id))
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

    async fn record_rejected_callback(
        &self,
        id: &str,
        at_ms: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let note = serde_json::to_string(&executor_lifecycle::RejectedCallback {
            at_ms,
            reason: reason.to_string(),
        })
        .map_err(|e| err(e.to_string()))?;
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(ex_pk(id)))
            .update_expression(
                "SET callbacks_rejected = list_append(if_not_exists(callbacks_rejected, :empty), :one)",
            )
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(callbacks_rejected) OR size(callbacks_rejected) < :kept)",
            )
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(":one", AttributeValue::L(vec![s(&note)]))
            .expression_attribute_values(":kept", n(executor_lifecycle::REJECTED_CALLBACKS_KEPT as i64))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(err(aws_sdk_dynamodb::error::DisplayErrorContext(&e))),
        }
    }

    async fn set_reconcile_failures(
        &self,
        id: &str,
        failures: Option<&executor_lifecycle::ReconcileFailures>,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(ex_pk(id)))
            .condition_expression("attribute_exists(pk)");
        let update = match failures {
            Some(f) => update
                .update_expression("SET reconcile_failures = :f")
                .expression_attribute_values(
                    ":f",
                    s(serde_json::to_string(f).map_err(|e| err(e.to_string()))?),
                ),
            None => update.update_expression("REMOVE reconcile_failures"),
        };
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(err(aws_sdk_dynamodb::error::DisplayErrorContext(&e))),
        }
    }

    async fn overdue(&self, due_before_ms: i64, limit: usize) -> Result<Vec<Guard>, StoreError> {
        // The index projects keys only: query every partition (and `due`, the single key of
        // items written before the sharding) for the ids whose due time has passed, take the
        // oldest `limit` across them, then read each of those items (consistently: the index
        // is eventually consistent, the item says what is true now) and keep the ones that
        // still need work at a due time before the cut.
        use futures::{StreamExt as _, TryStreamExt as _};
        let per_shard = limit.div_ceil(DUE_SHARDS as usize).clamp(50, 1000) as i32;
        let keys: Vec<String> = (0..DUE_SHARDS)
            .map(|k| format!("due#{k}"))
            .chain(std::iter::once("due".to_string()))
            .collect();
        let pages: Vec<Vec<(i64, String)>> = futures::stream::iter(keys)
            .map(|key| async move {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(BY_DUE)
                    .key_condition_expression("due_shard = :d AND due_at < :t")
                    .expression_attribute_values(":d", s(key))
                    .expression_attribute_values(":t", n(due_before_ms))
                    .limit(per_shard)
                    .send()
                    .await
                    .map_err(|e| err(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
                out.items()
                    .iter()
                    .map(|item| {
                        let pk = get_s(item, "pk")
                            .ok_or_else(|| StoreError::Corrupt("index item without pk".into()))?;
                        let due = item
                            .get("due_at")
                            .and_then(|v| v.as_n().ok())
                            .and_then(|v| v.parse().ok())
                            .ok_or_else(|| {
                                StoreError::Corrupt(format!("index item {pk} without due_at"))
                            })?;
                        Ok((due, pk.to_string()))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .buffer_unordered(OVERDUE_CONCURRENCY)
            .try_collect()
            .await?;
        let mut due: Vec<(i64, String)> = pages.into_iter().flatten().collect();
        due.sort();
        due.truncate(limit.max(1));
        let items: Vec<Option<Item>> = futures::stream::iter(due)
            .map(|(_, pk)| self.get_item(pk))
            .buffered(OVERDUE_CONCURRENCY)
            .try_collect()
            .await?;
        let mut guards = Vec::new();
        for item in items.into_iter().flatten() {
            let g = guard_of(&item)?;
            let still_due = item
                .get("due_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|at| at < due_before_ms);
            if still_due {
                guards.push(g);
            }
        }
        guards.sort_by_key(|g| g.next_due_ms);
        Ok(guards)
    }

    async fn list(&self, q: &ListQuery) -> Result<Vec<Guard>, StoreError> {
        let Some(tenant) = &q.tenant else {
            return Err(StoreError::Unavailable(
                "listing needs a tenant on DynamoDB (no scans)".into(),
            ));
        };
        let mut out = Vec::new();
        let mut exclusive_hi = q.before.as_ref().map(|(at, id)| format!("{at:013}#{id}"));
        // The upper bound: the cursor position or `created_before_ms`, whichever is lower.
        let before = q.created_before_ms.map(|b| format!("{b:013}"));
        let mut cursor = match (exclusive_hi.clone(), before) {
            (Some(c), Some(b)) => c.min(b),
            (Some(c), None) => c,
            (None, Some(b)) => b,
            (None, None) => "~".into(),
        };
        let lower = q
            .created_after_ms
            .map(|a| format!("{a:013}"))
            .unwrap_or_else(|| "0".into());
        let limit = q.limit.max(1);
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_TENANT)
                .key_condition_expression("tenant = :t AND created_sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":t", s(tenant))
                .expression_attribute_values(":lo", s(&lower))
                .expression_attribute_values(":hi", s(&cursor))
                .scan_index_forward(false)
                .limit((limit * 2).min(200) as i32)
                .send()
                .await
                .map_err(|e| err(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
            let mut progressed = false;
            // The index holds keys only (a commit never writes it): the page's items are read
            // in batches, in the index's order.
            let mut keys = Vec::new();
            for item in page.items() {
                let sk = get_s(item, "created_sk").unwrap_or_default().to_string();
                if exclusive_hi.as_deref() == Some(sk.as_str()) {
                    continue;
                }
                progressed = true;
                cursor = sk.clone();
                exclusive_hi = Some(sk);
                if let Some(pk) = get_s(item, "pk") {
                    keys.push(pk.to_string());
                }
            }
            let items = self.batch_get(&keys).await?;
            // An item gone since the query (expired) is skipped.
            for item in items.into_iter().flatten() {
                let g = guard_of(&item)?;
                let keep = (q.statuses.is_empty() || q.statuses.contains(&g.status()))
                    && (q.outcomes.is_empty()
                        || g.hot.outcome.is_none_or(|o| q.outcomes.contains(&o)))
                    && q.delivery_attempted
                        .is_none_or(|a| a == (g.hot.delivery_attempts > 0))
                    && q.model.as_ref().is_none_or(|m| &g.model == m)
                    && q.provider.as_ref().is_none_or(|p| &g.provider == p)
                    && q.error_class.is_none_or(|c| g.error_class() == Some(c))
                    && (!q.with_error || g.error_class().is_some())
                    && (!q.parked || g.parked().is_some());
                if keep {
                    out.push(g);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            if !progressed || page.last_evaluated_key().is_none() {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod due_shard_tests {
    #[test]
    fn due_times_round_up_to_their_bucket() {
        assert_eq!(super::bucket_up(1_000, 0), 1_000);
        assert_eq!(super::bucket_up(60_000, 60_000), 60_000);
        assert_eq!(super::bucket_up(60_001, 60_000), 120_000);
        assert_eq!(super::bucket_up(1, 60_000), 60_000);
        assert_eq!(super::bucket_up(-1, 60_000), 0);
    }

    use super::*;

    #[test]
    fn executions_spread_over_every_due_shard_and_stay_on_theirs() {
        let mut seen = std::collections::BTreeMap::new();
        for i in 0..6400 {
            let id = format!("ex_01m8sq{i:020}");
            *seen.entry(due_shard(&id)).or_insert(0) += 1;
            assert_eq!(due_shard(&id), due_shard(&id));
        }
        assert_eq!(seen.len(), DUE_SHARDS as usize, "{seen:?}");
        assert!(seen.values().all(|n| *n > 60), "{seen:?}");
    }
}
