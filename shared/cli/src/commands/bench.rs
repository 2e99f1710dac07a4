//! `executor bench`: measure the embedded backend with instant simulators.

use anyhow::Result;

/// Arguments of `executor bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Executions per shape for the overhead figures.
    #[arg(long, default_value_t = 300)]
    overhead_samples: usize,
    /// Executions per measured throughput batch.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Concurrent API clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Consumers per queue.
    #[arg(long, default_value_t = 32)]
    workers: usize,
    /// Store sizes at which to measure throughput (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    store_sizes: Vec<usize>,
    /// Executions held in flight for the memory figure (0 skips it).
    #[arg(long, default_value_t = 2000)]
    inflight: usize,
    /// Print JSON instead of Markdown tables.
    #[arg(long)]
    json: bool,
}

/// Prints the report (Markdown tables, or JSON).
pub async fn run(a: BenchArgs) -> Result<i32> {
    super::init_logs("error");
    let opts = crate::bench::BenchOptions {
        overhead_samples: a.overhead_samples,
        batch: a.batch,
        clients: a.clients,
        workers: a.workers,
        store_sizes: a.store_sizes,
        inflight: a.inflight,
    };
    let report = crate::bench::run(&opts).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::bench::markdown(&report));
    }
    Ok(0)
}
