//! `executor reconcile`: one reconcile pass now, on a data directory or a deployed stack.

use super::Backend;
use anyhow::{Result, bail};
use std::path::PathBuf;

/// Arguments of `executor reconcile`.
#[derive(clap::Args)]
pub struct ReconcileArgs {
    /// `embedded` (the data directory of `executor dev`) or `aws` (the resources named by
    /// the functions' environment: EXECUTOR_TABLE, EXECUTOR_BUCKET, EXECUTOR_*_QUEUE_URL,
    /// EXECUTOR_OUTCOME_QUEUE_URL, EXECUTOR_REDIS_URL, AWS_ENDPOINT_URL).
    #[arg(long, value_enum, default_value = "embedded")]
    backend: Backend,
    /// Data directory (embedded).
    #[arg(long, default_value = ".executor", env = "EXECUTOR_DATA_DIR")]
    data_dir: PathBuf,
    /// Bundles directory.
    #[arg(long, env = "EXECUTOR_BUNDLES_DIR")]
    bundles: Option<PathBuf>,
    /// Configuration file (embedded; the reconcile grace period is read from it).
    #[arg(long, env = "EXECUTOR_CONFIG")]
    config: Option<PathBuf>,
    /// Secret that signs outbound customer webhooks (an outbox may hold a delivery).
    #[arg(long, env = "EXECUTOR_WEBHOOK_SECRET")]
    webhook_secret: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Prints what the pass did.
pub async fn run(a: ReconcileArgs) -> Result<i32> {
    let report = match a.backend {
        Backend::Embedded => {
            let cfg = super::load_config(a.config.as_deref())?;
            let opts = super::local_options(a.data_dir, &cfg, a.bundles, a.webhook_secret);
            crate::local::reconcile_once(opts).await?
        }
        Backend::Aws => {
            if let Some(b) = a.bundles {
                bail!(
                    "--bundles is not used with --backend aws; set EXECUTOR_BUNDLES_DIR={} instead",
                    b.display()
                );
            }
            let app = executor_lambda::App::from_env().await?;
            let ev = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"});
            serde_json::from_value(app.dispatch(ev).await?)?
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::render::reconcile(&report));
    }
    Ok(0)
}
