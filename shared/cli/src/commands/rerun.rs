//! `executor rerun`: a new execution with an execution's request, linked to it.

use super::ServerArgs;
use anyhow::Result;

/// Arguments of `executor rerun`.
#[derive(clap::Args)]
pub struct RerunArgs {
    /// Execution id.
    id: String,
    /// Another model to run the same input on.
    #[arg(long)]
    model: Option<String>,
    /// Idempotency key.
    #[arg(long)]
    idempotency_key: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Prints the new execution; exit 1 when the API refuses the rerun.
pub async fn run(a: RerunArgs) -> Result<i32> {
    let client = a.server.client()?;
    let (status, body) = client
        .rerun(&a.id, a.model.as_deref(), a.idempotency_key.as_deref())
        .await?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(i32::from(status >= 300))
}
