//! `executor keys`: create, list and revoke API keys in a data directory or a deployed table.

use super::Backend;
use crate::keys::{KeyStore, Location};
use anyhow::Result;
use clap::Subcommand;
use comfy_table::Table;
use std::path::PathBuf;

/// Where `executor keys` finds the keys.
#[derive(clap::Args)]
pub struct KeyStoreArgs {
    /// `embedded` (the data directory of `executor dev`) or `aws` (a deployed stack's
    /// DynamoDB table, with the operator's AWS credentials).
    #[arg(long, value_enum, default_value = "embedded")]
    backend: Backend,
    /// Data directory (embedded).
    #[arg(long, default_value = ".executor", env = "EXECUTOR_DATA_DIR")]
    data_dir: PathBuf,
    /// DynamoDB table (aws): the stack's `TableName` output.
    #[arg(long, env = "EXECUTOR_TABLE")]
    table: Option<String>,
    /// AWS endpoint override (aws), e.g. moto server; AWS itself when unset.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: Option<String>,
    /// AWS region (aws).
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
}

impl KeyStoreArgs {
    fn location(self) -> Location {
        match self.backend {
            Backend::Embedded => Location::Embedded {
                data_dir: self.data_dir,
            },
            Backend::Aws => Location::Aws {
                table: self.table.unwrap_or_default(),
                endpoint: self.endpoint,
                region: self.region,
            },
        }
    }
}

/// The subcommands of `executor keys`.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make an API key for a tenant and print it (on stdout, alone, once: only its SHA-256
    /// hash is stored). Tenant names: ^[a-z0-9][a-z0-9_-]{0,62}$.
    Create {
        /// The tenant the key acts for.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        store: KeyStoreArgs,
    },
    /// List the stored keys: key id (a prefix of the key's hash), tenant, creation time.
    /// Never the keys themselves.
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: KeyStoreArgs,
    },
    /// Revoke a key by its id (as `keys list` shows it). The API refuses it with 401: at once
    /// on the embedded backend, within 60 s on AWS (warm functions cache key lookups).
    Revoke {
        /// The key id (or a longer prefix of the key's hash, or the whole hash).
        key_id: String,
        #[command(flatten)]
        store: KeyStoreArgs,
    },
}

/// Runs a keys command.
pub async fn run(command: KeysCommand) -> Result<i32> {
    match command {
        KeysCommand::Create { tenant, store } => {
            executor_api::validate_tenant(&tenant).map_err(anyhow::Error::msg)?;
            let store = KeyStore::open(&store.location()).await?;
            let (key, id) = store.create(&tenant).await?;
            eprintln!(
                "created API key {id} for tenant {tenant}; it is shown only now (only its SHA-256 hash is stored):"
            );
            println!("{key}");
            Ok(0)
        }
        KeysCommand::List {
            tenant,
            json,
            store,
        } => {
            let store = KeyStore::open(&store.location()).await?;
            let keys: Vec<_> = store
                .list()
                .await?
                .into_iter()
                .filter(|k| tenant.as_ref().is_none_or(|t| &k.tenant == t))
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                println!("no API keys");
            } else {
                let mut t = Table::new();
                t.load_preset(comfy_table::presets::NOTHING);
                t.set_header(vec!["KEY ID", "TENANT", "CREATED"]);
                for k in &keys {
                    t.add_row(vec![
                        k.key_id.clone(),
                        k.tenant.clone(),
                        k.created_at.clone(),
                    ]);
                }
                println!("{t}");
            }
            Ok(0)
        }
        KeysCommand::Revoke { key_id, store } => {
            let aws = store.backend == Backend::Aws;
            let store = KeyStore::open(&store.location()).await?;
            let revoked = store.revoke(&key_id).await?;
            let what = match &revoked {
                Some(k) => format!("{} (tenant {})", k.key_id, k.tenant),
                None => key_id.trim().to_ascii_lowercase(),
            };
            if aws {
                println!(
                    "revoked API key {what}; warm functions cache key lookups, so it stops working within 60 s"
                );
            } else {
                println!("revoked API key {what}; the API refuses it from now on");
            }
            Ok(0)
        }
    }
}
