//! `executor bundle import`: draft a model file from a platform model's OpenAPI schema.

use anyhow::{Result, bail};
use clap::ValueEnum;
use std::path::PathBuf;

/// The platforms whose published model schemas can be imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Platform {
    /// Replicate (`OWNER/NAME`).
    Replicate,
    /// fal (an endpoint id).
    Fal,
}

impl Platform {
    fn as_str(self) -> &'static str {
        match self {
            Platform::Replicate => "replicate",
            Platform::Fal => "fal",
        }
    }
}

/// Arguments of `executor bundle import`.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// `replicate` or `fal`.
    #[arg(value_enum)]
    platform: Platform,
    /// `OWNER/NAME` (Replicate) or the endpoint id (fal, e.g. `fal-ai/flux/schnell`).
    model: String,
    /// The schema document (`-`: stdin).
    #[arg(long, default_value = "-")]
    schema: PathBuf,
    /// Print the model file instead of writing it.
    #[arg(long)]
    stdout: bool,
    /// Bundles directory.
    #[arg(long, env = "EXECUTOR_BUNDLES_DIR")]
    bundles: Option<PathBuf>,
}

/// Writes `<bundles>/<platform>-<model>.yaml` (never over an existing file), or prints it.
pub fn run(a: ImportArgs) -> Result<i32> {
    let doc = super::read_document(&a.schema)?;
    let text = match a.platform {
        Platform::Replicate => crate::import::import_replicate(&a.model, &doc)?,
        Platform::Fal => crate::import::import_fal(&a.model, &doc)?,
    };
    if a.stdout {
        print!("{text}");
        return Ok(0);
    }
    let dir = a.bundles.unwrap_or_else(crate::local::default_bundles_dir);
    let file = dir.join(format!(
        "{}-{}.yaml",
        a.platform.as_str(),
        a.model.trim_start_matches('/').replace(['/', '.'], "-")
    ));
    if file.exists() {
        bail!("{} exists; not overwritten (use --stdout)", file.display());
    }
    std::fs::write(&file, text)?;
    println!(
        "wrote {} (confirm the pricing, then write its fixtures)",
        file.display()
    );
    Ok(0)
}
