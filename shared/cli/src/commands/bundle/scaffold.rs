//! `executor bundle scaffold`: draft a model file from one operation of an OpenAPI document.

use anyhow::Result;
use std::path::PathBuf;

/// Arguments of `executor bundle scaffold`.
#[derive(clap::Args)]
pub struct ScaffoldArgs {
    /// The provider file it extends.
    #[arg(long)]
    provider: String,
    /// The OpenAPI document (JSON or YAML; `-`: stdin).
    #[arg(long)]
    from_openapi: PathBuf,
    /// The operation.
    operation: String,
}

/// Prints the model file.
pub fn run(a: ScaffoldArgs) -> Result<i32> {
    let doc = super::read_document(&a.from_openapi)?;
    print!(
        "{}",
        crate::import::scaffold(&a.provider, &doc, &a.operation)?
    );
    Ok(0)
}
