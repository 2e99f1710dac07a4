//! `executor bundle conformance`: a pass/fail checklist per model, from its bundle and
//! fixtures.

use crate::replay;
use anyhow::{Result, bail};
use std::path::PathBuf;

/// Arguments of `executor bundle conformance`.
#[derive(clap::Args)]
pub struct ConformanceArgs {
    /// A model id or `all`.
    model: String,
    /// Fixtures directory (`bundles/fixtures` by default).
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Bundles directory.
    #[arg(long, env = "EXECUTOR_BUNDLES_DIR")]
    bundles: Option<PathBuf>,
}

/// Prints the checklists; exit 1 on any failed check.
pub fn run(a: ConformanceArgs) -> Result<i32> {
    let (bundles_dir, fixtures_dir) = super::dirs(a.bundles, a.fixtures);
    let all = replay::bundles_by_id(&bundles_dir)?;
    let chosen: Vec<&String> = if a.model == "all" {
        all.keys().collect()
    } else if let Some((id, _)) = all.get_key_value(&a.model) {
        vec![id]
    } else {
        bail!(
            "{}: not a model id in {} (or `all`)",
            a.model,
            bundles_dir.display()
        );
    };
    let mut failures = 0;
    for id in chosen {
        let (file, bundle) = &all[id];
        let dir = replay::fixtures_of(&fixtures_dir, file);
        let mut fixtures = Vec::new();
        if dir.is_dir() {
            for f in replay::fixture_files(&dir)? {
                fixtures.push(replay::read_fixture(&f)?);
            }
        }
        println!("{id} ({})", file.display());
        for c in crate::conformance::checklist(bundle, &fixtures) {
            if !c.pass {
                failures += 1;
            }
            println!(
                "  {}  {}: {}",
                if c.pass { "pass" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
    }
    if failures > 0 {
        println!("{failures} check(s) failed");
        return Ok(1);
    }
    println!("all checks pass");
    Ok(0)
}
