//! Reruns and batches: two ways of creating executions from others.
//!
//! **Rerun** ([`Engine::rerun`]): a new execution with the stored request of another (its
//! input, webhook and duration; optionally another model, validated against it), linked both
//! ways. The link `rerun_of` is part of the new guard's version 0; the original's `reruns`
//! list gets the new id atomically with that insert (one SQLite transaction, one DynamoDB
//! `TransactWriteItems` with the guard put, the idempotency put and an update of the
//! original), so neither link exists without the other.
//!
//! **Batch** ([`Engine::create_batch`]): up to [`MAX_BATCH_ITEMS`] create requests accepted
//! as one. Every item is validated before anything is written. The batch is recorded first
//! (its request blob `batches/{id}/request`, write-once, then, with an `Idempotency-Key`, the
//! key's item naming the batch), and each item is then created with an idempotency key
//! derived from the batch id and its index ([`batch_item_key`]). A retry with the same key
//! finds the batch and creates each item again through its derived key: items created before
//! a crash are replayed, missing ones are created, none twice.

use crate::blobs;
use crate::engine::{Accepted, CreateRequest, Engine, EngineError};
use crate::inline::InlineSlots;
use crate::model::{BatchMember, Guard, MAX_RERUNS};
use crate::ports::{IdempotencyItem, Inserted, StoreError};
use crate::taxonomy::Failure;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Items a batch may hold.
pub const MAX_BATCH_ITEMS: usize = 100;

/// Items of a batch created at once.
const BATCH_CONCURRENCY: usize = 8;

/// One item of a batch request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    /// Model id.
    pub model: String,
    /// Input.
    pub input: Value,
    /// Customer webhook for the item's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Requested maximum duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_seconds: Option<u64>,
    /// Models to fall back on, in order, each with its input mapping.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<crate::fallback::Target>,
    /// Retries of a failed job on the same model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

/// The durable record of a batch, at `batches/{id}/request` (write-once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// `bat_` + ULID.
    pub id: String,
    /// Owner.
    pub tenant: String,
    /// Acceptance time (ms).
    pub created_at_ms: i64,
    /// The customer's key, if one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Hash of the items: a key reused for other items is refused.
    pub request_hash: String,
    /// The items, as requested.
    pub items: Vec<BatchItem>,
}

/// A batch and its items' executions (`None`: not created, after a crash mid-batch: a retry
/// with the same `Idempotency-Key` creates it).
#[derive(Debug, Clone)]
pub struct Batch {
    /// The record.
    pub record: BatchRecord,
    /// One per item, in order.
    pub executions: Vec<Option<Guard>>,
    /// True when an earlier request with the same key created the batch.
    pub replayed: bool,
}

/// The blob key of a batch's record.
pub fn batch_key(id: &str) -> String {
    format!("batches/{}/request", crate::keys::path_safe(id))
}

/// The idempotency key of item `index` of batch `id` (tenant-scoped like every key).
pub fn batch_item_key(id: &str, index: usize) -> String {
    format!("{id}/items/{index}")
}

/// A new batch id.
pub fn new_batch_id() -> String {
    format!("bat_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// True if `s` looks like a batch id we issued.
pub fn is_batch_id(s: &str) -> bool {
    s.len() == 30 && s.starts_with("bat_") && s[4..].chars().all(|c| c.is_ascii_alphanumeric())
}

fn items_hash(items: &[BatchItem]) -> String {
    let canonical = json!({"batch": items});
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Refuses an idempotency key out of bounds.
pub(crate) fn check_key(key: &str) -> Result<(), EngineError> {
    if key.is_empty() || key.len() > 255 {
        return Err(EngineError::Invalid(Failure::validation(
            "/headers/idempotency-key",
            "Idempotency-Key must be 1 to 255 characters",
        )));
    }
    Ok(())
}

/// A failure about item `index`, its field made a pointer into the batch body.
fn at_item(index: usize, mut f: Failure) -> Failure {
    let field = f.field.take().unwrap_or_default();
    let field = if field == "/" { String::new() } else { field };
    f.field = Some(format!("/items/{index}{field}"));
    f.message = format!("items[{index}]: {}", f.message);
    f
}

impl Engine {
    /// Reruns execution `id` of `tenant`: a new execution with its stored request (input,
    /// webhook, duration), of `model` when given (the input is validated against that model),
    /// linked both ways (`rerun_of` on the new one, `reruns` on the original). Accepted like
    /// a create ([`Engine::accept`]): the same inline rules, the same idempotency.
    pub async fn rerun(
        self: &Arc<Self>,
        tenant: &str,
        id: &str,
        model: Option<String>,
        idempotency_key: Option<String>,
        slots: &InlineSlots,
    ) -> Result<Accepted, EngineError> {
        let original = self.get(tenant, id).await?;
        let stored = self
            .request(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("execution {id} has no stored request")))?;
        let input = match &model {
            // On another model, the defaults the original's schema filled in are not the
            // customer's input: the other model's own defaults apply instead.
            Some(m) if *m != stored.model => match self.ports.catalog.get(&stored.model) {
                Some(d) => strip_defaults(&d.spec().input_schema, &stored.input),
                None => stored.input.clone(),
            },
            _ => stored.input.clone(),
        };
        let same_model = model.is_none();
        let req = CreateRequest {
            model: model.unwrap_or_else(|| stored.model.clone()),
            input,
            webhook_url: stored.webhook_url.clone(),
            idempotency_key,
            // The original's duration (capped by the model's own, which the rerun's model
            // applies again).
            max_duration_seconds: Some(stored.max_duration_ms.div_ceil(1000).max(1)),
            rerun_of: Some(original.id.clone()),
            batch: None,
            // The same chain, on the same model; another model runs alone.
            // Each step with the input it ran with (mapped and validated again).
            fallbacks: if same_model {
                stored.chain_steps()
            } else {
                Vec::new()
            },
            retries: if same_model { stored.retries } else { None },
        };
        if let Some(key) = &req.idempotency_key {
            check_key(key)?;
            // A replay answers even when the original has no room for more reruns.
            if self
                .ports
                .guards
                .find_idempotency(tenant, key)
                .await?
                .is_some()
            {
                return self.accept(tenant, req, slots, None).await;
            }
        }
        if original.reruns.len() >= MAX_RERUNS {
            return Err(EngineError::Conflict(format!(
                "execution {id} has {MAX_RERUNS} reruns already, as many as it may have"
            )));
        }
        self.accept(tenant, req, slots, None).await
    }

    /// Validates every item of a batch; the first failure names the item and the field
    /// (`/items/3/input/prompt`). Nothing is written.
    pub fn check_batch(&self, items: &[BatchItem]) -> Result<(), EngineError> {
        if items.is_empty() {
            return Err(EngineError::Invalid(Failure::validation(
                "/items",
                "a batch needs at least one item",
            )));
        }
        if items.len() > MAX_BATCH_ITEMS {
            return Err(EngineError::Invalid(Failure::validation(
                "/items",
                format!(
                    "a batch holds at most {MAX_BATCH_ITEMS} items; this one has {}: split it",
                    items.len()
                ),
            )));
        }
        for (i, item) in items.iter().enumerate() {
            self.check(&item_request(item, None))
                .map_err(|f| EngineError::Invalid(at_item(i, f)))?;
        }
        Ok(())
    }

    /// Accepts a batch: validates every item first (nothing is written if one is invalid),
    /// records the batch, then creates its items. With `idempotency_key`, a retry answers the
    /// same batch and completes the items a crash left uncreated, without duplicates.
    pub async fn create_batch(
        &self,
        tenant: &str,
        items: Vec<BatchItem>,
        idempotency_key: Option<String>,
    ) -> Result<Batch, EngineError> {
        if let Some(key) = &idempotency_key {
            check_key(key)?;
        }
        self.check_batch(&items)?;
        let hash = items_hash(&items);
        let mut replayed = false;
        let mut found = None;
        if let Some(key) = &idempotency_key
            && let Some(item) = self.ports.guards.find_idempotency(tenant, key).await?
        {
            found = Some(self.batch_of_key(item, &hash).await?);
        }
        let record = match found {
            Some(record) => {
                replayed = true;
                record
            }
            None => {
                let record = BatchRecord {
                    id: new_batch_id(),
                    tenant: tenant.to_string(),
                    created_at_ms: self.now(),
                    idempotency_key: idempotency_key.clone(),
                    request_hash: hash.clone(),
                    items,
                };
                // The record first: once the key names the batch, its record exists.
                blobs::put_json(self.ports.blobs.as_ref(), &batch_key(&record.id), &record).await?;
                match &idempotency_key {
                    None => record,
                    Some(key) => {
                        let item = IdempotencyItem {
                            tenant: tenant.to_string(),
                            key: key.clone(),
                            execution_id: record.id.clone(),
                            request_hash: hash.clone(),
                        };
                        match self.ports.guards.insert_idempotency(&item).await? {
                            Inserted::Created => record,
                            // A concurrent request with the same key won: its batch is the
                            // one (this record stays unreferenced).
                            Inserted::IdempotencyKeyTaken(existing) => {
                                replayed = true;
                                self.batch_of_key(existing, &hash).await?
                            }
                            // A bare idempotency item holds no budget.
                            Inserted::BudgetExceeded(refusal) => return Err(refusal.into()),
                        }
                    }
                }
            }
        };
        let executions = self.create_items(&record).await?;
        Ok(Batch {
            record,
            executions: executions.into_iter().map(Some).collect(),
            replayed,
        })
    }

    /// The batch an idempotency item names, if it was made for these items.
    async fn batch_of_key(
        &self,
        item: IdempotencyItem,
        hash: &str,
    ) -> Result<BatchRecord, EngineError> {
        if item.request_hash != hash || !is_batch_id(&item.execution_id) {
            return Err(EngineError::IdempotencyConflict);
        }
        let record: Option<BatchRecord> =
            blobs::get_json(self.ports.blobs.as_ref(), &batch_key(&item.execution_id)).await?;
        record.filter(|r| r.tenant == item.tenant).ok_or_else(|| {
            EngineError::Store(StoreError::Corrupt(format!(
                "idempotency item points at missing batch {}",
                item.execution_id
            )))
        })
    }

    /// Creates (or replays) every item of a batch through its derived idempotency key.
    async fn create_items(&self, record: &BatchRecord) -> Result<Vec<Guard>, EngineError> {
        let mut out = Vec::with_capacity(record.items.len());
        for start in (0..record.items.len()).step_by(BATCH_CONCURRENCY) {
            let end = (start + BATCH_CONCURRENCY).min(record.items.len());
            let chunk = (start..end).map(|i| self.create_item(record, i));
            out.extend(futures::future::try_join_all(chunk).await?);
        }
        Ok(out)
    }

    /// Creates (or replays) item `i` of a batch.
    async fn create_item(&self, record: &BatchRecord, i: usize) -> Result<Guard, EngineError> {
        let item = &record.items[i];
        let member = BatchMember {
            id: record.id.clone(),
            index: i as u32,
        };
        let mut req = item_request(item, Some(member));
        req.idempotency_key = Some(batch_item_key(&record.id, i));
        self.create(&record.tenant, req, false)
            .await
            .map(|a| a.guard)
            .map_err(|e| match e {
                EngineError::Invalid(f) => EngineError::Invalid(at_item(i, f)),
                other => other,
            })
    }

    /// Item `i`'s execution as it is now, if it was created.
    async fn batch_item(
        &self,
        tenant: &str,
        record: &BatchRecord,
        i: usize,
    ) -> Result<Option<Guard>, EngineError> {
        let key = batch_item_key(&record.id, i);
        match self.ports.guards.find_idempotency(tenant, &key).await? {
            Some(item) => Ok(self
                .ports
                .guards
                .get(&item.execution_id)
                .await?
                .filter(|g| g.tenant == tenant)),
            None => Ok(None),
        }
    }

    /// A tenant's batch with its items' executions as they are now (404 for unknown ids and
    /// other tenants' batches). Reads only: an item a crash left uncreated is `None` until a
    /// retry of the batch creates it.
    pub async fn batch(&self, tenant: &str, id: &str) -> Result<Batch, EngineError> {
        if !is_batch_id(id) {
            return Err(EngineError::NotFound);
        }
        let record: BatchRecord = blobs::get_json(self.ports.blobs.as_ref(), &batch_key(id))
            .await?
            .filter(|r: &BatchRecord| r.tenant == tenant)
            .ok_or(EngineError::NotFound)?;
        let mut executions = Vec::with_capacity(record.items.len());
        for start in (0..record.items.len()).step_by(BATCH_CONCURRENCY) {
            let end = (start + BATCH_CONCURRENCY).min(record.items.len());
            let chunk = (start..end).map(|i| self.batch_item(tenant, &record, i));
            executions.extend(futures::future::try_join_all(chunk).await?);
        }
        Ok(Batch {
            record,
            executions,
            replayed: false,
        })
    }
}

/// `input` without the top-level properties whose value is the default `schema` declares
/// for them (what validation against that schema filled in).
fn strip_defaults(schema: &Value, input: &Value) -> Value {
    let (Some(props), Some(obj)) = (schema["properties"].as_object(), input.as_object()) else {
        return input.clone();
    };
    let kept = obj
        .iter()
        .filter(|(k, v)| props.get(*k).and_then(|p| p.get("default")) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}

/// The create request of a batch item.
fn item_request(item: &BatchItem, member: Option<BatchMember>) -> CreateRequest {
    CreateRequest {
        model: item.model.clone(),
        input: item.input.clone(),
        webhook_url: item.webhook_url.clone(),
        idempotency_key: None,
        max_duration_seconds: item.max_duration_seconds,
        rerun_of: None,
        batch: member,
        fallbacks: item.fallbacks.clone(),
        retries: item.retries,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_and_item_keys() {
        let id = new_batch_id();
        assert!(is_batch_id(&id), "{id}");
        assert!(!is_batch_id("bat_x"));
        assert!(!is_batch_id(&crate::keys::new_execution_id()));
        assert_eq!(batch_item_key(&id, 7), format!("{id}/items/7"));
        assert!(batch_item_key(&id, 99).len() <= 255);
    }

    #[test]
    fn an_item_failure_points_into_the_batch_body() {
        let f = at_item(
            3,
            Failure::validation("/input/prompt", "prompt is required"),
        );
        assert_eq!(f.field.as_deref(), Some("/items/3/input/prompt"));
        assert!(f.message.starts_with("items[3]: "));
        let g = at_item(0, Failure::validation("/", "bad"));
        assert_eq!(g.field.as_deref(), Some("/items/0"));
    }

    #[test]
    fn defaults_filled_in_by_a_schema_are_stripped() {
        let schema = json!({"properties": {"prompt": {"type": "string"}, "size": {"default": "1024x1024"}, "n": {"default": 1}}});
        let input = json!({"prompt": "p", "size": "1024x1024", "n": 2});
        assert_eq!(
            strip_defaults(&schema, &input),
            json!({"prompt": "p", "n": 2})
        );
        assert_eq!(strip_defaults(&json!({}), &input), input);
    }

    #[test]
    fn the_items_hash_depends_on_every_item() {
        let a = BatchItem {
            fallbacks: Vec::new(),
            retries: None,
            model: "m".into(),
            input: json!({"prompt": "a"}),
            webhook_url: None,
            max_duration_seconds: None,
        };
        let mut b = a.clone();
        b.input = json!({"prompt": "b"});
        assert_ne!(
            items_hash(std::slice::from_ref(&a)),
            items_hash(std::slice::from_ref(&b))
        );
        assert_ne!(
            items_hash(&[a.clone(), b.clone()]),
            items_hash(&[b, a.clone()])
        );
        assert_eq!(items_hash(std::slice::from_ref(&a)), items_hash(&[a]));
    }
}
