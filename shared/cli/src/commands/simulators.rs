//! `executor simulators`: only the provider simulators, until Ctrl-C, printing the
//! environment that points `executor dev --no-simulators` at them.

use anyhow::{Context, Result};
use std::net::SocketAddr;

/// Arguments of `executor simulators`.
#[derive(clap::Args)]
pub struct SimulatorsArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    bind: SocketAddr,
}

/// Runs until Ctrl-C.
pub async fn run(a: SimulatorsArgs) -> Result<i32> {
    super::init_logs("warn");
    let sims = executor_simulators::Simulators::start_on(
        a.bind,
        executor_simulators::SimConfig::default(),
    )
    .await?;
    for p in executor_simulators::Provider::ALL.map(|p| p.as_str()) {
        println!(
            "EXECUTOR_{}_BASE_URL={}",
            p.to_uppercase(),
            sims.base_url(p)
        );
    }
    println!(
        "REPLICATE_WEBHOOK_SECRET={}",
        sims.replicate_webhook_secret()
    );
    println!("FAL_WEBHOOK_PUBLIC_KEYS={}", sims.fal_public_key_b64url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(0)
}
