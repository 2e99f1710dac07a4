//! The configuration page shows exactly the defaults the code has, and bad keys are refused
//! with the key named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use executor_cli::config::Config;
use std::path::Path;

#[test]
fn docs_show_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let block = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    assert_eq!(
        block,
        Config::default().to_toml(),
        "docs/configuration.md drifted from the defaults"
    );
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("executor.toml");
    std::fs::write(&f, "[http]\nmax_retrys = 3\n").unwrap();
    let e = Config::load(&f, true).unwrap_err().to_string();
    assert!(e.contains("max_retrys"), "{e}");
    std::fs::write(
        &f,
        "[providers.fal]\ncapacity = 5\n[workers]\nconcurrency = 4\n",
    )
    .unwrap();
    let c = Config::load(&f, true).unwrap();
    assert_eq!(c.providers["fal"].capacity, Some(5));
    assert_eq!(c.workers.concurrency, 4);
    assert!(Config::load(&dir.path().join("missing.toml"), true).is_err());
    assert!(Config::load(&dir.path().join("missing.toml"), false).is_ok());
}
