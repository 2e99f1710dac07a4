//! `executor keys`: the API keys of a system, on the embedded data directory (SQLite) or on a
//! deployed DynamoDB table. A key is `exk_{tenant}_{32 hex}`, shown once at creation; only its
//! SHA-256 hash is stored, the same hash the API looks up on every request
//! (`executor_api::hash_api_key`). A key is named by its id: the first [`KEY_ID_LEN`] hex
//! characters of that hash, which reveal nothing of the key.
//!
//! On AWS the command runs with the operator's credentials (the functions' IAM roles are not
//! involved): `dynamodb:DescribeTable`, `PutItem` (create), `Query` on the `by-tenant` index
//! (list, and revoke by id) and `DeleteItem` (revoke).

use anyhow::{Context, Result, bail};
use executor_api::{hash_api_key, validate_tenant};
use executor_aws::{AwsConfig, DynamoGuardStore};
use executor_embedded::SqliteStore;
use executor_lifecycle::SystemClock;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Hex characters of the key hash that name a key.
pub const KEY_ID_LEN: usize = 12;
/// The shortest key id prefix `revoke` accepts.
pub const MIN_KEY_ID_LEN: usize = 8;

/// Where the keys are.
#[derive(Debug, Clone)]
pub enum Location {
    /// An embedded data directory (`executor dev --data-dir`).
    Embedded {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// A DynamoDB table (a deployed stack's `TableName` output, or moto).
    Aws {
        /// Table name.
        table: String,
        /// Endpoint override (moto, LocalStack); AWS itself when None.
        endpoint: Option<String>,
        /// Region.
        region: String,
    },
}

/// One stored key (never the key itself).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyInfo {
    /// The first [`KEY_ID_LEN`] hex characters of the key's SHA-256.
    pub key_id: String,
    /// Hex SHA-256 of the key.
    pub key_hash: String,
    /// The tenant the key belongs to.
    pub tenant: String,
    /// When the key was stored (ms since the epoch).
    pub created_at_ms: i64,
    /// `created_at_ms` as RFC 3339 (UTC).
    pub created_at: String,
}

impl KeyInfo {
    fn new(key_hash: String, tenant: String, created_at_ms: i64) -> KeyInfo {
        let at = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(created_at_ms).unwrap_or(0));
        KeyInfo {
            key_id: key_hash.chars().take(KEY_ID_LEN).collect(),
            key_hash,
            tenant,
            created_at_ms,
            created_at: humantime::format_rfc3339_seconds(at).to_string(),
        }
    }
}

pub use executor_system::dev::{check_key_text, new_key};

/// An opened key store.
pub enum KeyStore {
    /// SQLite in a data directory.
    Embedded(Arc<SqliteStore>),
    /// The DynamoDB table.
    Aws(DynamoGuardStore),
}

impl KeyStore {
    /// Opens the keys at `loc`: the data directory must hold executor data; the table must
    /// exist. Fails with one line naming what is missing.
    pub async fn open(loc: &Location) -> Result<KeyStore> {
        match loc {
            Location::Embedded { data_dir } => {
                let db = data_dir.join("executor.db");
                if !db.is_file() {
                    bail!(
                        "no executor data in {} (run `executor dev --data-dir {}` first, or pass --data-dir)",
                        data_dir.display(),
                        data_dir.display()
                    );
                }
                let store = SqliteStore::open(&db, Arc::new(SystemClock))
                    .with_context(|| format!("opening data directory {}", data_dir.display()))?;
                Ok(KeyStore::Embedded(Arc::new(store)))
            }
            Location::Aws {
                table,
                endpoint,
                region,
            } => {
                if table.is_empty() {
                    bail!(
                        "--table (or EXECUTOR_TABLE) is required with --backend aws: the stack's TableName output"
                    );
                }
                let cfg = AwsConfig {
                    table: table.clone(),
                    bucket: String::new(),
                    queues: HashMap::new(),
                    outcome_queue_url: String::new(),
                    limiter: executor_aws::LimiterChoice::DynamoDb,
                    secret_arn: None,
                    endpoint_url: endpoint.clone().filter(|e| !e.is_empty()),
                    region: region.clone(),
                    s3_path_style: false,
                };
                let sdk = cfg.sdk_config().await;
                let client = aws_sdk_dynamodb::Client::new(&sdk);
                if let Err(e) = client.describe_table().table_name(table).send().await {
                    let why = match e.as_service_error() {
                        Some(se) => format!(
                            "{}: {}",
                            se.meta().code().unwrap_or("error"),
                            se.meta().message().unwrap_or("no message")
                        ),
                        None => format!("{:#}", anyhow::Error::from(e)),
                    };
                    bail!("DynamoDB table '{table}' at {}: {why}", cfg.endpoint());
                }
                let store = DynamoGuardStore::new(client, table.clone(), Arc::new(SystemClock));
                Ok(KeyStore::Aws(store))
            }
        }
    }

    /// Stores `key` (its hash) for `tenant`, after checking the tenant's name.
    pub async fn add(&self, tenant: &str, key: &str) -> Result<()> {
        validate_tenant(tenant).map_err(anyhow::Error::msg)?;
        let hash = hash_api_key(key);
        match self {
            KeyStore::Embedded(s) => s.add_api_key(tenant, &hash).await?,
            KeyStore::Aws(s) => s.add_api_key(tenant, &hash).await?,
        }
        Ok(())
    }

    /// Makes and stores a new key for `tenant`; returns the key (to show once) and its id.
    pub async fn create(&self, tenant: &str) -> Result<(String, String)> {
        validate_tenant(tenant).map_err(anyhow::Error::msg)?;
        let key = new_key(tenant);
        self.add(tenant, &key).await?;
        let id = hash_api_key(&key).chars().take(KEY_ID_LEN).collect();
        Ok((key, id))
    }

    /// Every stored key, oldest first.
    pub async fn list(&self) -> Result<Vec<KeyInfo>> {
        let rows = match self {
            KeyStore::Embedded(s) => s.list_api_keys().await?,
            KeyStore::Aws(s) => s.list_api_keys().await?,
        };
        let mut keys: Vec<KeyInfo> = rows
            .into_iter()
            .map(|(h, t, at)| KeyInfo::new(h, t, at))
            .collect();
        keys.sort_by(|a, b| (a.created_at_ms, &a.key_hash).cmp(&(b.created_at_ms, &b.key_hash)));
        Ok(keys)
    }

    /// Revokes the key named by `key_id` (its id, a longer prefix of its hash, or the whole
    /// hash); returns what was revoked, `None` for a whole hash that was not listed.
    pub async fn revoke(&self, key_id: &str) -> Result<Option<KeyInfo>> {
        let id = key_id.trim().to_ascii_lowercase();
        if id.len() < MIN_KEY_ID_LEN || id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit())
        {
            bail!(
                "key id {key_id:?}: give the KEY ID `executor keys list` shows ({KEY_ID_LEN} hex characters; at least {MIN_KEY_ID_LEN})"
            );
        }
        let listed: Vec<KeyInfo> = self
            .list()
            .await?
            .into_iter()
            .filter(|k| k.key_hash.starts_with(&id))
            .collect();
        let (hash, info) = match listed.as_slice() {
            [one] => (one.key_hash.clone(), Some(one.clone())),
            // A whole hash may name a key stored before keys were listable (DynamoDB items
            // written without the index attributes): delete it directly.
            [] if id.len() == 64 => (id.clone(), None),
            [] => bail!("no API key with id {id} (see `executor keys list`)"),
            many => bail!(
                "key id {id} matches {} keys; give more characters of the hash",
                many.len()
            ),
        };
        let existed = match self {
            KeyStore::Embedded(s) => s.revoke_api_key(&hash).await?,
            KeyStore::Aws(s) => s.revoke_api_key(&hash).await?,
        };
        if !existed {
            bail!("no API key with id {id} (see `executor keys list`)");
        }
        Ok(info)
    }
}
