//! `executor bundle record`: record a fixture through the recording proxy.

use crate::replay;
use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use std::path::PathBuf;

/// What a recording runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Against {
    /// The provider simulators.
    Simulator,
    /// The real provider (credentials from the environment).
    Provider,
}

/// Arguments of `executor bundle record`.
#[derive(clap::Args)]
pub struct RecordArgs {
    /// The model id.
    model: String,
    /// The input, as JSON.
    #[arg(long)]
    input: String,
    /// The case name (file name).
    #[arg(long)]
    name: String,
    /// What the case shows.
    #[arg(long, default_value = "")]
    description: String,
    /// `simulator` or `provider`.
    #[arg(long, value_enum, default_value = "simulator")]
    against: Against,
    /// Fixtures directory (`bundles/fixtures` by default).
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Bundles directory.
    #[arg(long, env = "EXECUTOR_BUNDLES_DIR")]
    bundles: Option<PathBuf>,
}

/// Writes `<fixtures>/<bundle file stem>/<name>.yaml` and says what it holds.
pub async fn run(a: RecordArgs) -> Result<i32> {
    let (bundles_dir, fixtures_dir) = super::dirs(a.bundles, a.fixtures);
    let input: serde_json::Value = serde_json::from_str(&a.input).context("--input is not JSON")?;
    let target = match a.against {
        Against::Simulator => replay::Target::Simulators,
        Against::Provider => replay::Target::Provider,
    };
    let name = a.name;
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("--name {name:?}: use a plain file name");
    }
    let fixture =
        replay::record(&bundles_dir, &a.model, input, &name, &a.description, target).await?;
    let all = replay::bundles_by_id(&bundles_dir)?;
    let file = &all[&a.model].0;
    let out = replay::write_fixture(&fixtures_dir, file, &fixture)?;
    println!(
        "recorded {} interaction(s), {} callback(s): {} ({}{})",
        fixture.interactions.len(),
        fixture.callbacks.len(),
        out.display(),
        fixture.expect.outcome,
        fixture
            .expect
            .error_class
            .as_deref()
            .map(|c| format!(", {c}"))
            .unwrap_or_default()
    );
    Ok(0)
}
