//! `executor redrive`: deliver parked (degraded) outcomes again.

use super::ServerArgs;
use anyhow::{Result, bail};

/// Arguments of `executor redrive`.
#[derive(clap::Args)]
pub struct RedriveArgs {
    /// Execution ids.
    ids: Vec<String>,
    /// Every execution of the key's tenant whose delivery is degraded.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// One line per execution; exit 1 if any delivery fails again.
pub async fn run(a: RedriveArgs) -> Result<i32> {
    let client = a.server.client()?;
    let ids = if a.all {
        client.ids_where(&[("delivery", "degraded")]).await?
    } else if a.ids.is_empty() {
        bail!("name the executions to redrive, or pass --all");
    } else {
        a.ids
    };
    let mut failed = 0;
    for id in &ids {
        let (status, body) = client.redrive(id).await?;
        if status == 200 {
            println!(
                "{id}: delivered ({}, delivery {})",
                body["status"].as_str().unwrap_or("?"),
                body["delivery"]["state"].as_str().unwrap_or("?")
            );
        } else {
            failed += 1;
            println!(
                "{id}: {status} {}",
                body["detail"].as_str().unwrap_or("no detail")
            );
        }
    }
    println!("{} redriven, {failed} failed", ids.len() - failed);
    Ok(i32::from(failed > 0))
}
