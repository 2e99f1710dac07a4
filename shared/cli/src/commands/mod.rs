//! The `executor` commands, one module per command: each holds its arguments (a clap `Args`
//! struct) and a `run` returning the process exit code. This module holds the command line
//! itself ([`Cli`], [`Command`]), what several commands share (where the API is, where the
//! configuration file is, which backend), and the dispatch; `main` only parses and exits.

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

pub mod batch;
pub mod bench;
pub mod bundle;
pub mod config;
pub mod demo;
pub mod dev;
pub mod explain;
pub mod failures;
pub mod keys;
pub mod load;
pub mod openapi;
pub mod reconcile;
pub mod redrive;
pub mod rerun;
pub mod run;
pub mod simulators;
pub mod usage;

/// The command line.
#[derive(Parser)]
#[command(
    name = "executor",
    version,
    about = "Run AI model executions across providers through one lifecycle"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// The whole system in one process: API, queue workers, reconciler, provider simulators.
    Dev(dev::DevArgs),
    /// Submit one execution, follow it through the lifecycle, print the normalized outcome.
    Run(run::RunArgs),
    /// Print the effective configuration (file + `EXECUTOR__*` environment) as TOML.
    Config(config::ConfigArgs),
    /// Print the OpenAPI 3.1 document of the HTTP API (the same one `GET /openapi.json` serves).
    Openapi,
    /// Work with bundles.
    Bundle {
        #[command(subcommand)]
        command: bundle::BundleCommand,
    },
    /// Run only the provider simulators (for `executor dev --no-simulators` pointed at them
    /// with `EXECUTOR_<PROVIDER>_BASE_URL`, or for bundle work).
    Simulators(simulators::SimulatorsArgs),
    /// Show the full timeline of an execution: every transition, provider call, failure, wait,
    /// callback and delivery.
    Explain(explain::ExplainArgs),
    /// Failed and degraded executions grouped into piles (error class, provider, model,
    /// normalized provider message), most frequent first, with counts, first/last seen and an
    /// example execution per pile.
    #[command(subcommand_negates_reqs = true)]
    Failures(failures::FailuresArgs),
    /// Counts and cost of your executions of a window (default: this UTC month) by model,
    /// provider, day or error class, and your budgets: spent, reserved, left.
    Usage(usage::UsageArgs),
    /// Rerun an execution: a new one with the same request (optionally on another model),
    /// linked to it. Prints the new execution.
    Rerun(rerun::RerunArgs),
    /// Batches: up to 100 executions created as one, followed as one.
    Batch {
        #[command(subcommand)]
        command: batch::BatchCommand,
    },
    /// Deliver parked outcomes again: the given executions whose delivery is `degraded`, or all of the
    /// key's with `--all`. Exits 1 if any delivery fails again.
    Redrive(redrive::RedriveArgs),
    /// Find executions overdue for their next step (lost messages, ambiguous submits, pending
    /// outboxes), re-drive them once, and report what was done. `executor dev` and the AWS
    /// schedule run the same pass periodically; this runs it now.
    Reconcile(reconcile::ReconcileArgs),
    /// Measure the embedded backend with instant simulators: overhead per transition and per
    /// execution for each shape, throughput at growing store sizes, memory per in-flight
    /// execution (see docs/benchmarks.md).
    Bench(bench::BenchArgs),
    /// A closed-loop HTTP load generator (POST a JSON body), for side-by-side runs against
    /// other servers: prints throughput and latency percentiles as JSON.
    Load(load::LoadArgs),
    /// API keys: create, list, revoke (embedded data directory or a deployed DynamoDB table).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Start everything embedded, run a mixed batch over every bundle and shape with injected
    /// faults, print a summary; exit 0 when every execution ended as expected.
    Demo(demo::DemoArgs),
}

impl Cli {
    /// Runs the command; the process exit code (0 done, 1 the command's failure, as each
    /// command documents).
    pub async fn run(self) -> Result<i32> {
        match self.command {
            Command::Dev(a) => dev::run(a).await,
            Command::Run(a) => run::run(a).await,
            Command::Config(a) => config::run(a),
            Command::Openapi => openapi::run(),
            Command::Bundle { command } => bundle::run(command).await,
            Command::Simulators(a) => simulators::run(a).await,
            Command::Explain(a) => explain::run(a).await,
            Command::Failures(a) => failures::run(a).await,
            Command::Usage(a) => usage::run(a).await,
            Command::Rerun(a) => rerun::run(a).await,
            Command::Batch { command } => batch::run(command).await,
            Command::Redrive(a) => redrive::run(a).await,
            Command::Reconcile(a) => reconcile::run(a).await,
            Command::Bench(a) => bench::run(a).await,
            Command::Load(a) => load::run(a).await,
            Command::Keys { command } => keys::run(command).await,
            Command::Demo(a) => demo::run(a).await,
        }
    }
}

/// The one-line refusal of a value a typed option does not accept (`main` prints it after
/// `error: ` and exits 2), worded as the commands worded it when they read the option as text
/// (e.g. ``--backend must be `embedded` or `aws`, not `gcp` ``); None for every other parse
/// error, which clap reports itself.
pub fn refusal(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidValue {
        return None;
    }
    let text = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let arg = text(ContextKind::InvalidArg)?;
    let value = text(ContextKind::InvalidValue)?;
    let name = arg.split_whitespace().next().unwrap_or(arg);
    let line = match name {
        "--backend" => format!("--backend must be `embedded` or `aws`, not `{value}`"),
        "--against" => format!("--against {value}: use simulator or provider"),
        "<PLATFORM>" => format!(
            "import {value}: platforms are replicate and fal (any provider: executor bundle scaffold)"
        ),
        _ => return None,
    };
    Some(line)
}

/// Where a command's data lives: `embedded` (a data directory) or `aws` (a deployed stack's
/// resources).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// SQLite and files in a data directory.
    Embedded,
    /// DynamoDB, S3, SQS (and Redis).
    Aws,
}

/// Where the API is and the key to use.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// API base URL.
    #[arg(long, env = "EXECUTOR_URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API key.
    #[arg(long, env = "EXECUTOR_API_KEY")]
    pub key: String,
}

impl ServerArgs {
    /// A client of the API.
    pub fn client(&self) -> Result<crate::client::Client> {
        crate::client::Client::new(&self.server, &self.key)
    }
}

/// The configuration: the file given (which must exist), else `executor.toml` if there is
/// one, overridden by `EXECUTOR__*` variables.
pub fn load_config(given: Option<&Path>) -> Result<crate::config::Config> {
    crate::config::Config::load(given.unwrap_or(Path::new("executor.toml")), given.is_some())
}

/// The local system's options for a data directory, from the configuration, as `executor
/// dev` and `executor reconcile` read them: customer webhooks may target this machine
/// (explicitly; a deployment keeps the configured policy, which refuses loopback by default),
/// and the bundles directory and webhook secret given on the command line win.
pub fn local_options(
    data_dir: PathBuf,
    cfg: &crate::config::Config,
    bundles: Option<PathBuf>,
    webhook_secret: Option<String>,
) -> crate::local::LocalOptions {
    let mut opts = crate::local::LocalOptions::dev(data_dir);
    opts.apply(cfg);
    opts.lifecycle.webhook_targets.allow_loopback = true;
    if let Some(b) = bundles {
        opts.bundles_dir = b;
    }
    if let Some(s) = webhook_secret {
        opts.webhook_secret = s;
    }
    opts
}

/// Logs to stderr, filtered by `EXECUTOR_LOG` (else `default`).
pub fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EXECUTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Whether stdout is a terminal (colours).
pub fn stdout_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(args: &[&str]) -> std::result::Result<Cli, String> {
        Cli::try_parse_from(std::iter::once("executor").chain(args.iter().copied()))
            .map_err(|e| refusal(&e).unwrap_or_else(|| format!("clap: {:?}", e.kind())))
    }

    /// The typed options accept exactly the values they accepted as text, and refuse
    /// others in the words the commands used.
    #[test]
    fn typed_options_accept_the_old_values_and_refuse_others_in_one_line() {
        for ok in [
            &["dev", "--backend", "embedded"][..],
            &["dev", "--backend", "aws"],
            &["reconcile", "--backend", "aws"],
            &["keys", "list", "--backend", "embedded"],
            &["keys", "revoke", "k", "--backend", "aws"],
            &[
                "bundle",
                "record",
                "m",
                "--input",
                "{}",
                "--name",
                "n",
                "--against",
                "provider",
            ],
            &[
                "bundle",
                "record",
                "m",
                "--input",
                "{}",
                "--name",
                "n",
                "--against",
                "simulator",
            ],
            &["bundle", "import", "replicate", "o/n"],
            &["bundle", "import", "fal", "fal-ai/x"],
        ] {
            assert!(parse(ok).is_ok(), "{ok:?}");
        }
        let Command::Dev(_) = parse(&["dev"]).unwrap().command else {
            panic!("dev")
        };
        for (args, said) in [
            (
                &["keys", "list", "--backend", "gcp"][..],
                "--backend must be `embedded` or `aws`, not `gcp`",
            ),
            (
                &["reconcile", "--backend", "Embedded"],
                "--backend must be `embedded` or `aws`, not `Embedded`",
            ),
            (
                &[
                    "bundle",
                    "record",
                    "m",
                    "--input",
                    "{}",
                    "--name",
                    "n",
                    "--against",
                    "x",
                ],
                "--against x: use simulator or provider",
            ),
            (
                &["bundle", "import", "heroku", "x"],
                "import heroku: platforms are replicate and fal (any provider: executor bundle scaffold)",
            ),
        ] {
            assert_eq!(parse(args).err().as_deref(), Some(said), "{args:?}");
        }
        // Other errors stay clap's own.
        assert_eq!(
            parse(&["dev", "--bind", "nowhere"]).err().as_deref(),
            Some("clap: ValueValidation")
        );
    }
}
