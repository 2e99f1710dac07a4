//! `executor bundle test`: replay a bundle's fixtures against the real lifecycle.

use crate::replay;
use anyhow::{Result, bail};
use futures::StreamExt as _;
use std::path::PathBuf;

/// Arguments of `executor bundle test`.
#[derive(clap::Args)]
pub struct TestArgs {
    /// A bundle file, a model id, or `all`.
    bundle: String,
    /// Fixtures directory (`bundles/fixtures` by default); a bundle's fixtures are in
    /// `<dir>/<bundle file stem>/`.
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Bundles directory.
    #[arg(long, env = "EXECUTOR_BUNDLES_DIR")]
    bundles: Option<PathBuf>,
    /// Write each fixture's actual outcome as its expectation (review the diff before
    /// committing).
    #[arg(long)]
    bless: bool,
}

/// One line per fixture (and its diff when it fails); exit 1 if any fixture fails or a
/// bundle has none.
pub async fn run(a: TestArgs) -> Result<i32> {
    let (bundles_dir, fixtures_dir) = super::dirs(a.bundles, a.fixtures);
    let all = replay::bundles_by_id(&bundles_dir)?;
    let bundle = a.bundle;
    let chosen: Vec<(String, PathBuf)> = if bundle == "all" {
        all.iter()
            .map(|(id, (f, _))| (id.clone(), f.clone()))
            .collect()
    } else if let Some((f, _)) = all.get(&bundle) {
        vec![(bundle.clone(), f.clone())]
    } else {
        let p = PathBuf::from(&bundle);
        match all
            .iter()
            .find(|(_, (f, _))| f.canonicalize().ok() == p.canonicalize().ok() && p.exists())
        {
            Some((id, (f, _))) => vec![(id.clone(), f.clone())],
            None => bail!(
                "{bundle}: not a bundle file or model id in {} (models: {})",
                bundles_dir.display(),
                all.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    };
    let mut failed = 0;
    let mut passed = 0;
    for (id, file) in &chosen {
        let dir = replay::fixtures_of(&fixtures_dir, file);
        let files = if dir.is_dir() {
            replay::fixture_files(&dir)?
        } else {
            vec![]
        };
        if files.is_empty() {
            println!("FAIL {id}: no fixtures in {}", dir.display());
            failed += 1;
            continue;
        }
        // Fixtures replay on their own embedded systems, mostly waiting on scaled
        // poll delays: a few at a time, reported in order.
        let all_ref = &all;
        let dir_ref = &bundles_dir;
        let mut runs = futures::stream::iter(files.into_iter().map(|f| async move {
            let r = replay::run_fixture(&f, all_ref, dir_ref).await;
            (f, r)
        }))
        .buffered(4);
        while let Some((f, r)) = runs.next().await {
            if r.passed {
                passed += 1;
                let a = r.actual.as_ref();
                println!(
                    "ok   {id} {} ({}{})",
                    r.name,
                    a.map(|a| a.outcome.as_str()).unwrap_or(""),
                    a.and_then(|a| a.error_class.as_deref())
                        .map(|c| format!(", {c}"))
                        .unwrap_or_default()
                );
            } else if let (true, Some(actual)) = (a.bless, r.actual.as_ref()) {
                replay::bless(&f, actual)?;
                passed += 1;
                println!("bless {id} {} ({})", r.name, f.display());
                for line in r.detail.lines() {
                    println!("     {line}");
                }
            } else {
                failed += 1;
                println!("FAIL {id} {} ({})", r.name, f.display());
                for line in r.detail.lines() {
                    println!("     {line}");
                }
            }
        }
    }
    println!("{passed} fixture(s) passed, {failed} failed");
    Ok(if failed > 0 { 1 } else { 0 })
}
