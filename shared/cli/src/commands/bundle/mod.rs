//! `executor bundle ...`: check, test (replay fixtures), conformance, import, scaffold,
//! infer and record, one module each.

use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};

pub mod check;
pub mod conformance;
pub mod import;
pub mod infer;
pub mod record;
pub mod scaffold;
pub mod test;

/// The subcommands of `executor bundle`.
#[derive(Subcommand)]
pub enum BundleCommand {
    /// Validate bundles (a file, or every bundle in a directory; `bundles/` by default):
    /// schema and unknown fields, template syntax and undefined variables, adapter hooks,
    /// pricing, and, for a directory, what the catalogue checks across bundles. Prints each
    /// problem as `file: path: message (hint: ...)`; exits 1 if there is any.
    Check(check::CheckArgs),
    /// Replay a bundle's fixtures against the real lifecycle (embedded, in this process):
    /// the provider is played by the recorded interactions, callbacks are sent again, and the
    /// outcome (status, error class, outputs, cost) is compared with each fixture's
    /// expectation; a difference is shown as a diff. BUNDLE is a bundle file, a model id, or
    /// `all`. Exits 1 if any fixture fails or a bundle has none.
    Test(test::TestArgs),
    /// Check an integration against what the lifecycle expects of its shape, from its bundle
    /// and its fixtures: a job id from the create answer, every status mapped, cancel steps
    /// (or a documented `no_cancel`), each documented error class covered by a fixture, the
    /// pricing unit reading a usage figure the provider returns, callback verification for
    /// callback shapes, bad input refused before a call, and success / drift / empty-output
    /// fixtures. Prints a pass/fail checklist per model; exits 1 on any failure.
    Conformance(conformance::ConformanceArgs),
    /// Draft a model file from a platform model's published OpenAPI schema: `import
    /// replicate OWNER/NAME` (the model or version JSON, whose `openapi_schema` has
    /// `components.schemas.Input`) or `import fal ENDPOINT` (the endpoint's OpenAPI document),
    /// read from `--schema FILE` or stdin (`-`, the default). Writes `<bundles>/<name>.yaml`
    /// (or prints it with `--stdout`) with the input schema, defaults, endpoint and a pricing
    /// stub to confirm.
    Import(import::ImportArgs),
    /// Draft a model file for any provider from one operation of its OpenAPI document (an
    /// `operationId` or `POST /path`): endpoint, input schema from the request body, modality
    /// guessed from the response, pricing stub. Prints the model file.
    Scaffold(scaffold::ScaffoldArgs),
    /// Propose how a provider's answers are read, from recorded conversations (fixture
    /// files): the job id, the status values and their meaning, the outputs (URLs, base64 or
    /// hex data, text, MIME types, dimensions, durations), usage figures for pricing, and
    /// error rules. Prints a model-file patch (YAML) to review, not to paste unread.
    Infer(infer::InferArgs),
    /// Record a fixture: run one execution through a recording proxy against the simulators
    /// (default) or the real provider (`--against provider`, credentials from the
    /// environment), and write the interactions, callbacks and outcome to
    /// `<fixtures>/<bundle file stem>/<name>.yaml`.
    Record(record::RecordArgs),
}

/// Runs a bundle command.
pub async fn run(command: BundleCommand) -> Result<i32> {
    match command {
        BundleCommand::Check(a) => check::run(a),
        BundleCommand::Test(a) => test::run(a).await,
        BundleCommand::Conformance(a) => conformance::run(a),
        BundleCommand::Import(a) => import::run(a),
        BundleCommand::Scaffold(a) => scaffold::run(a),
        BundleCommand::Infer(a) => infer::run(a),
        BundleCommand::Record(a) => record::run(a).await,
    }
}

/// The bundles directory given, else `bundles/` ([`crate::local::default_bundles_dir`]);
/// and the fixtures directory given, else `<bundles>/fixtures`.
fn dirs(bundles: Option<PathBuf>, fixtures: Option<PathBuf>) -> (PathBuf, PathBuf) {
    let bundles_dir = bundles.unwrap_or_else(crate::local::default_bundles_dir);
    let fixtures_dir = fixtures.unwrap_or_else(|| bundles_dir.join("fixtures"));
    (bundles_dir, fixtures_dir)
}

/// A JSON or YAML document from a file, or stdin for `-`.
fn read_document(path: &Path) -> Result<serde_json::Value> {
    let text = if path.as_os_str() == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)?;
        t
    } else {
        std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?
    };
    serde_json::from_str(&text)
        .or_else(|_| serde_yaml_ng::from_str(&text))
        .with_context(|| format!("{}: neither JSON nor YAML", path.display()))
}
