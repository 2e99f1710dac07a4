//! `executor bundle check`: validate bundle files.

use anyhow::{Result, bail};
use std::path::PathBuf;

/// Arguments of `executor bundle check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// A bundle file or a directory of bundles.
    path: Option<PathBuf>,
}

/// Prints each problem (exit 1 if any), else each valid bundle.
pub fn run(a: CheckArgs) -> Result<i32> {
    let path = a.path.unwrap_or_else(crate::local::default_bundles_dir);
    let files = if path.is_dir() {
        executor_bundles::catalog::bundle_files(&path)?
    } else if path.is_file() {
        vec![path.clone()]
    } else {
        bail!("{}: no such file or directory", path.display());
    };
    let mut problems = 0;
    let mut models = Vec::new();
    for f in &files {
        match executor_bundles::catalog::check_file(f) {
            Ok(b) => models.push(format!("{} ({})", b.id, f.display())),
            Err(issues) => {
                problems += issues.len();
                for i in issues {
                    println!("{i}");
                }
            }
        }
    }
    if problems == 0 && path.is_dir() {
        let mut opts = executor_bundles::CatalogOptions::from_env();
        opts.allow_missing_credentials = true;
        if let Err(e) = executor_bundles::BundleCatalog::load(&path, opts) {
            problems += 1;
            println!("{e}");
        }
    }
    if problems > 0 {
        println!("{problems} problem(s) in {} bundle file(s)", files.len());
        return Ok(1);
    }
    for m in &models {
        println!("ok  {m}");
    }
    println!("{} bundle(s) valid", models.len());
    Ok(0)
}
