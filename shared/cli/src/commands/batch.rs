//! `executor batch`: create a batch of executions, show one.

use super::ServerArgs;
use anyhow::{Context, Result};
use clap::Subcommand;

/// The subcommands of `executor batch`.
#[derive(Subcommand)]
pub enum BatchCommand {
    /// Create a batch: one execution per `--input` (at most 100), all of `--model`.
    Create {
        /// Model id of every item.
        #[arg(long)]
        model: String,
        /// One item's input JSON (repeat for each item).
        #[arg(long = "input", required = true)]
        inputs: Vec<String>,
        /// Idempotency key (a retry with it creates nothing new).
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show a batch: progress counts and each item's outcome.
    Get {
        /// Batch id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Prints the API's answer; exit 1 when it refuses the batch.
pub async fn run(command: BatchCommand) -> Result<i32> {
    match command {
        BatchCommand::Create {
            model,
            inputs,
            idempotency_key,
            server,
        } => {
            let client = server.client()?;
            let mut items = Vec::new();
            for (i, input) in inputs.iter().enumerate() {
                let input: serde_json::Value = serde_json::from_str(input)
                    .with_context(|| format!("--input number {} is not JSON", i + 1))?;
                items.push(serde_json::json!({"input": input}));
            }
            let body = serde_json::json!({"model": model, "items": items});
            let (status, body) = client
                .create_batch(&body, idempotency_key.as_deref())
                .await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
            Ok(i32::from(status >= 300))
        }
        BatchCommand::Get { id, server } => {
            let client = server.client()?;
            println!(
                "{}",
                serde_json::to_string_pretty(&client.batch(&id).await?)?
            );
            Ok(0)
        }
    }
}
