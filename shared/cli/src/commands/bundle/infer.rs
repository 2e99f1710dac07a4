//! `executor bundle infer`: propose how a provider's answers are read, from fixtures.

use anyhow::{Result, bail};
use std::path::PathBuf;

/// Arguments of `executor bundle infer`.
#[derive(clap::Args)]
pub struct InferArgs {
    /// A directory of fixture files (e.g. `bundles/fixtures/<model>`).
    #[arg(long)]
    fixtures: PathBuf,
}

/// Prints the proposed model-file patch (YAML).
pub fn run(a: InferArgs) -> Result<i32> {
    let mut list = Vec::new();
    for f in crate::replay::fixture_files(&a.fixtures)? {
        list.push(crate::replay::read_fixture(&f)?);
    }
    if list.is_empty() {
        bail!("{}: no fixture files", a.fixtures.display());
    }
    let patch = crate::infer::propose(&list);
    println!(
        "# Proposed by `executor bundle infer` from {} fixture(s) in {}: review before use.",
        list.len(),
        a.fixtures.display()
    );
    print!("{}", serde_yaml_ng::to_string(&patch)?);
    Ok(0)
}
