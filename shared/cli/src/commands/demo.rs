//! `executor demo`: everything embedded, a mixed batch over every bundle and shape with
//! injected faults, and a summary.

use crate::local::{LocalOptions, LocalSystem};
use anyhow::Result;
use comfy_table::Table;
use std::time::Instant;

/// Arguments of `executor demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Print results as JSON.
    #[arg(long)]
    json: bool,
}

/// Exit 0 when every execution ended as expected, 1 otherwise.
pub async fn run(a: DemoArgs) -> Result<i32> {
    super::init_logs("error");
    let dir = tempfile::tempdir()?;
    let mut opts = LocalOptions::dev(dir.path().to_path_buf());
    opts.lifecycle.time_scale = 0.02;
    opts.reconcile_every_ms = 1_000;
    let started = Instant::now();
    let sys = LocalSystem::start(opts).await?;
    let results = crate::demo::run(&sys).await?;
    let elapsed = started.elapsed();
    sys.stop().await;
    let all_ok = results.iter().all(|r| r.ok);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(if all_ok { 0 } else { 1 });
    }
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::ASCII_FULL_CONDENSED);
    t.set_header(vec![
        "model",
        "case",
        "expected",
        "outcome",
        "error class",
        "cost $",
        "",
    ]);
    for r in &results {
        t.add_row(vec![
            r.model.clone(),
            r.name.clone(),
            r.expected.clone(),
            r.outcome.clone(),
            r.error_class.clone().unwrap_or_else(|| "-".into()),
            format!("{:.4}", r.cost_usd),
            if r.ok {
                "ok".into()
            } else {
                "UNEXPECTED".into()
            },
        ]);
    }
    println!("{t}");
    let mut s = Table::new();
    s.load_preset(comfy_table::presets::ASCII_FULL_CONDENSED);
    s.set_header(vec!["outcome", "error class", "executions"]);
    for ((o, c), n) in crate::demo::summary(&results) {
        s.add_row(vec![o, c, n.to_string()]);
    }
    println!("{s}");
    println!(
        "{} executions, {} as expected, {} unexpected, in {:.1}s",
        results.len(),
        results.iter().filter(|r| r.ok).count(),
        results.iter().filter(|r| !r.ok).count(),
        elapsed.as_secs_f64()
    );
    Ok(if all_ok { 0 } else { 1 })
}
