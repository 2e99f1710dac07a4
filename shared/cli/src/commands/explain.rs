//! `executor explain`: an execution's whole timeline.

use super::ServerArgs;
use anyhow::Result;

/// Arguments of `executor explain`.
#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Execution id.
    id: String,
    #[command(flatten)]
    server: ServerArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Prints the execution and its timeline (rendered, or as JSON).
pub async fn run(a: ExplainArgs) -> Result<i32> {
    let client = a.server.client()?;
    let view = client.get(&a.id).await?;
    let events = client.events(&a.id).await?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"execution": view, "events": events["data"]})
            )?
        );
    } else {
        let color = super::stdout_is_terminal();
        print!("{}", crate::render::explain(&view, &events, color));
    }
    Ok(0)
}
