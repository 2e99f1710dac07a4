//! `executor dev`: the whole system in one process (embedded backend, or the Lambda handlers
//! against moto with `--backend aws`), until Ctrl-C.

use super::Backend;
use crate::local::LocalSystem;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Arguments of `executor dev`.
#[derive(clap::Args)]
pub struct DevArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "EXECUTOR_BIND")]
    bind: SocketAddr,
    /// Data directory (SQLite database and blobs).
    #[arg(long, default_value = ".executor", env = "EXECUTOR_DATA_DIR")]
    data_dir: PathBuf,
    /// Bundles directory.
    #[arg(long, env = "EXECUTOR_BUNDLES_DIR")]
    bundles: Option<PathBuf>,
    /// Talk to the real providers (credentials from the environment) instead of the simulators.
    #[arg(long)]
    no_simulators: bool,
    /// Multiply bundle poll cadences and retry delays (e.g. 0.1 to go ten times faster).
    #[arg(long)]
    time_scale: Option<f64>,
    /// Configuration file (all limits; see `executor config`).
    #[arg(long, env = "EXECUTOR_CONFIG")]
    config: Option<PathBuf>,
    /// `embedded` (SQLite + files) or `aws` (the Lambda handlers against --endpoint and --redis).
    #[arg(long, value_enum, default_value = "embedded")]
    backend: Backend,
    /// AWS endpoint for `--backend aws` (moto server or LocalStack).
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    endpoint: String,
    /// Redis URL of the inflight limiter for `--backend aws` (default: the DynamoDB
    /// limiter, leases in the table).
    #[arg(long)]
    redis: Option<String>,
    /// Name of the table, bucket and queue prefix for `--backend aws` (made if missing).
    #[arg(long, default_value = "executor-dev")]
    aws_prefix: String,
    /// The dev tenant's API key (a random one is made and printed otherwise).
    #[arg(long, env = "EXECUTOR_DEV_API_KEY")]
    api_key: Option<String>,
    /// Secret that signs outbound customer webhooks (`whsec_` + base64 key, Standard
    /// Webhooks); a fixed development secret otherwise, printed at start.
    #[arg(long, env = "EXECUTOR_WEBHOOK_SECRET")]
    webhook_secret: Option<String>,
}

/// Runs until Ctrl-C.
pub async fn run(a: DevArgs) -> Result<i32> {
    super::init_logs("info");
    let cfg = super::load_config(a.config.as_deref())?;
    let time_scale = a.time_scale.unwrap_or(cfg.lifecycle.time_scale);
    if let Some(k) = &a.api_key {
        crate::keys::check_key_text(k)?;
    }
    if a.backend == Backend::Aws {
        crate::aws_dev::run(crate::aws_dev::AwsDevOptions {
            bind: a.bind,
            endpoint: a.endpoint,
            redis_url: a.redis,
            prefix: a.aws_prefix,
            simulators: !a.no_simulators,
            time_scale,
            api_key: a.api_key,
        })
        .await?;
        return Ok(0);
    }
    let mut opts = super::local_options(a.data_dir.clone(), &cfg, a.bundles, a.webhook_secret);
    opts.bind = a.bind;
    if a.no_simulators {
        opts.simulators = None;
    }
    opts.lifecycle.time_scale = time_scale;
    if let Some(k) = a.api_key {
        opts.dev_key = Some(k);
    }
    // Print the signing secret only when it is the built-in development one.
    let secret = if opts.webhook_secret == executor_system::dev::DEV_WEBHOOK_SECRET {
        opts.webhook_secret.clone()
    } else {
        "(the one given with --webhook-secret / EXECUTOR_WEBHOOK_SECRET)".to_string()
    };
    let sys = LocalSystem::start(opts).await?;
    println!("executor dev listening on {}", sys.url);
    println!("data directory: {}", a.data_dir.display());
    println!("dev API key (tenant 'dev'): {}", sys.dev_key);
    println!("customer webhooks signed with (Standard Webhooks): {secret}");
    if let Some(s) = &sys.simulators {
        println!("provider simulators on http://{}", s.addr());
    }
    println!(
        "try: curl -s {}/v1/models -H 'Authorization: Bearer {}'",
        sys.url, sys.dev_key
    );
    println!("web page: {}/#/?key={}", sys.url, sys.dev_key);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sys.stop().await;
    Ok(0)
}
