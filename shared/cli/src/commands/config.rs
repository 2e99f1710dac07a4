//! `executor config`: print the effective configuration.

use anyhow::Result;
use std::path::PathBuf;

/// Arguments of `executor config`.
#[derive(clap::Args)]
pub struct ConfigArgs {
    /// Configuration file.
    #[arg(long, env = "EXECUTOR_CONFIG")]
    config: Option<PathBuf>,
}

/// Prints the configuration (file + `EXECUTOR__*` environment) as TOML.
pub fn run(a: ConfigArgs) -> Result<i32> {
    let cfg = super::load_config(a.config.as_deref())?;
    print!("{}", cfg.to_toml());
    Ok(0)
}
