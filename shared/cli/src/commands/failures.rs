//! `executor failures`: failed and degraded executions grouped into piles; `failures rerun
//! PILE` reruns a pile after a fix.

use super::ServerArgs;
use anyhow::Result;
use clap::Subcommand;

/// Arguments of `executor failures`.
#[derive(clap::Args)]
pub struct FailuresArgs {
    /// `rerun PILE [--dry-run]`: rerun a pile after a fix.
    #[command(subcommand)]
    command: Option<FailuresCommand>,
    /// Window: a duration such as 90m, 24h or 7d.
    #[arg(long, default_value = "24h")]
    since: String,
    /// Only this model.
    #[arg(long)]
    model: Option<String>,
    /// Only this provider.
    #[arg(long)]
    provider: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The subcommands of `executor failures`.
#[derive(Subcommand)]
pub enum FailuresCommand {
    /// Rerun every execution of a pile (its `pile` id in `executor failures`) after a fix:
    /// each as a new execution linked to it (`rerun_of`). Executions rerun already are
    /// skipped, so running it twice reruns each once. Exits 1 if a rerun is refused.
    Rerun {
        /// The pile id (`pile_...`).
        pile: String,
        /// List what would be rerun; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Rerun on this model instead of each execution's own.
        #[arg(long = "to-model")]
        to_model: Option<String>,
        /// The window the pile is from (as `executor failures --since`).
        #[arg(long, default_value = "24h")]
        since: String,
        /// The `--model` filter the pile was listed with.
        #[arg(long)]
        model: Option<String>,
        /// The `--provider` filter the pile was listed with.
        #[arg(long)]
        provider: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Lists the piles, or reruns one (exit 1 if a rerun is refused).
pub async fn run(a: FailuresArgs) -> Result<i32> {
    match a.command {
        Some(FailuresCommand::Rerun {
            pile,
            dry_run,
            to_model,
            since,
            model,
            provider,
            server,
            json,
        }) => {
            let client = server.client()?;
            let opts = crate::reruns::RerunPileOptions {
                since,
                model,
                provider,
                to_model,
                dry_run,
            };
            let report = crate::reruns::rerun_pile(&client, &pile, &opts).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            Ok(i32::from(report.failed() > 0))
        }
        None => {
            let client = a.server.client()?;
            let piles = client
                .failures(&a.since, a.model.as_deref(), a.provider.as_deref())
                .await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&piles)?);
            } else {
                let color = super::stdout_is_terminal();
                print!("{}", crate::render::failures(&piles, color));
            }
            Ok(0)
        }
    }
}
