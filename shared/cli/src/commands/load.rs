//! `executor load`: a closed-loop HTTP load generator.

use anyhow::{Context, Result};

/// Arguments of `executor load`.
#[derive(clap::Args)]
pub struct LoadArgs {
    /// Target URL.
    url: String,
    /// JSON body.
    #[arg(long)]
    body: String,
    /// Extra header `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measured requests.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Unmeasured requests first.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
}

/// Prints throughput and latency percentiles as JSON; exit 1 if any request failed.
pub async fn run(a: LoadArgs) -> Result<i32> {
    let body: serde_json::Value = serde_json::from_str(&a.body).context("--body is not JSON")?;
    let mut hs = Vec::new();
    for h in a.headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("header {h:?} is not `Name: value`"))?;
        hs.push((k.trim().to_string(), v.trim().to_string()));
    }
    let report =
        crate::bench::load(&a.url, &hs, &body, a.concurrency, a.requests, a.warmup).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.errors == 0 { 0 } else { 1 })
}
