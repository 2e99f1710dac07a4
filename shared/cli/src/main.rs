//! `executor`: the front door for people — dev server, run, demo.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use comfy_table::Table;
use executor_cli::client::{Client, CreateOptions};
use executor_cli::demo;
use executor_cli::local::{LocalOptions, LocalSystem};
use executor_cli::render::{outcome_json, outcome_of};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "executor",
    version,
    about = "Run AI model executions across providers through one lifecycle"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Validate bundles (a file, or every bundle in a directory; `bundles/` by default):
    /// schema and unknown fields, template syntax and undefined variables, adapter hooks,
    /// pricing, and, for a directory, what the catalogue checks across bundles. Prints each
    /// problem as `file: path: message (hint: ...)`; exits 1 if there is any.
    Check {
        /// A bundle file or a directory of bundles.
        path: Option<PathBuf>,
    },
    /// Replay a bundle's fixtures against the real lifecycle (embedded, in this process):
    /// the provider is played by the recorded interactions, callbacks are sent again, and the
    /// outcome (status, error class, outputs, cost) is compared with each fixture's
    /// expectation; a difference is shown as a diff. BUNDLE is a bundle file, a model id, or
    /// `all`. Exits 1 if any fixture fails or a bundle has none.
    Test {
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
    },
    /// Check an integration against what the lifecycle expects of its shape, from its bundle
    /// and its fixtures: a job id from the create answer, every status mapped, cancel steps
    /// (or a documented `no_cancel`), each documented error class covered by a fixture, the
    /// pricing unit reading a usage figure the provider returns, callback verification for
    /// callback shapes, bad input refused before a call, and success / drift / empty-output
    /// fixtures. Prints a pass/fail checklist per model; exits 1 on any failure.
    Conformance {
        /// A model id or `all`.
        model: String,
        /// Fixtures directory (`bundles/fixtures` by default).
        #[arg(long)]
        fixtures: Option<PathBuf>,
        /// Bundles directory.
        #[arg(long, env = "EXECUTOR_BUNDLES_DIR")]
        bundles: Option<PathBuf>,
    },
    /// Draft a model file from a platform model's published OpenAPI schema: `import
    /// replicate OWNER/NAME` (the model or version JSON, whose `openapi_schema` has
    /// `components.schemas.Input`) or `import fal ENDPOINT` (the endpoint's OpenAPI document),
    /// read from `--schema FILE` or stdin (`-`, the default). Writes `<bundles>/<name>.yaml`
    /// (or prints it with `--stdout`) with the input schema, defaults, endpoint and a pricing
    /// stub to confirm.
    Import {
        /// `replicate` or `fal`.
        platform: String,
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
    },
    /// Draft a model file for any provider from one operation of its OpenAPI document (an
    /// `operationId` or `POST /path`): endpoint, input schema from the request body, modality
    /// guessed from the response, pricing stub. Prints the model file.
    Scaffold {
        /// The provider file it extends.
        #[arg(long)]
        provider: String,
        /// The OpenAPI document (JSON or YAML; `-`: stdin).
        #[arg(long)]
        from_openapi: PathBuf,
        /// The operation.
        operation: String,
    },
    /// Propose how a provider's answers are read, from recorded conversations (fixture
    /// files): the job id, the status values and their meaning, the outputs (URLs, base64 or
    /// hex data, text, MIME types, dimensions, durations), usage figures for pricing, and
    /// error rules. Prints a model-file patch (YAML) to review, not to paste unread.
    Infer {
        /// A directory of fixture files (e.g. `bundles/fixtures/<model>`).
        #[arg(long)]
        fixtures: PathBuf,
    },
    /// Record a fixture: run one execution through a recording proxy against the simulators
    /// (default) or the real provider (`--against provider`, credentials from the
    /// environment), and write the interactions, callbacks and outcome to
    /// `<fixtures>/<bundle file stem>/<name>.yaml`.
    Record {
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
        #[arg(long, default_value = "simulator")]
        against: String,
        /// Fixtures directory (`bundles/fixtures` by default).
        #[arg(long)]
        fixtures: Option<PathBuf>,
        /// Bundles directory.
        #[arg(long, env = "EXECUTOR_BUNDLES_DIR")]
        bundles: Option<PathBuf>,
    },
}

/// Where `executor keys` finds the keys.
#[derive(clap::Args)]
struct KeyStoreArgs {
    /// `embedded` (the data directory of `executor dev`) or `aws` (a deployed stack's
    /// DynamoDB table, with the operator's AWS credentials).
    #[arg(long, default_value = "embedded")]
    backend: String,
    /// Data directory (embedded).
    #[arg(long, default_value = ".executor", env = "EXECUTOR_DATA_DIR")]
    data_dir: PathBuf,
    /// DynamoDB table (aws): the stack's `TableName` output.
    #[arg(long, env = "EXECUTOR_TABLE")]
    table: Option<String>,
    /// AWS endpoint override (aws), e.g. moto server; AWS itself when unset.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: Option<String>,
    /// AWS region (aws).
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
}

impl KeyStoreArgs {
    fn location(self) -> Result<executor_cli::keys::Location> {
        use executor_cli::keys::Location;
        match self.backend.as_str() {
            "embedded" => Ok(Location::Embedded {
                data_dir: self.data_dir,
            }),
            "aws" => Ok(Location::Aws {
                table: self.table.unwrap_or_default(),
                endpoint: self.endpoint,
                region: self.region,
            }),
            other => bail!("--backend must be `embedded` or `aws`, not `{other}`"),
        }
    }
}

/// Where the API is and the key to use.
#[derive(clap::Args)]
struct ServerArgs {
    /// API base URL.
    #[arg(long, env = "EXECUTOR_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// API key.
    #[arg(long, env = "EXECUTOR_API_KEY")]
    key: String,
}

#[derive(Subcommand)]
enum FailuresCommand {
    /// Rerun every execution of a pile (its `pile` id in `executor failures`) after a fix:
    /// each as a new execution linked to it (`rerun_of`). Executions rerun already are
    /// skipped, so running it twice reruns each once. Exits 1 if a rerun is refused.
    Rerun {
        /// The pile id (`pile_...`).
        pile: String,
        /// List what would be rerun; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Rerun on this model instead of each execution's own.
        #[arg(long = "to-model")]
        to_model: Option<String>,
        /// The window the pile is from (as `executor failures --since`).
        #[arg(long, default_value = "24h")]
        since: String,
        /// The `--model` filter the pile was listed with.
        #[arg(long)]
        model: Option<String>,
        /// The `--provider` filter the pile was listed with.
        #[arg(long)]
        provider: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BatchCommand {
    /// Create a batch: one execution per `--input` (at most 100), all of `--model`.
    Create {
        /// Model id of every item.
        #[arg(long)]
        model: String,
        /// One item's input JSON (repeat for each item).
        #[arg(long = "input", required = true)]
        inputs: Vec<String>,
        /// Idempotency key (a retry with it creates nothing new).
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show a batch: progress counts and each item's outcome.
    Get {
        /// Batch id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make an API key for a tenant and print it (on stdout, alone, once: only its SHA-256
    /// hash is stored). Tenant names: ^[a-z0-9][a-z0-9_-]{0,62}$.
    Create {
        /// The tenant the key acts for.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        store: KeyStoreArgs,
    },
    /// List the stored keys: key id (a prefix of the key's hash), tenant, creation time.
    /// Never the keys themselves.
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: KeyStoreArgs,
    },
    /// Revoke a key by its id (as `keys list` shows it). The API refuses it with 401: at once
    /// on the embedded backend, within 60 s on AWS (warm functions cache key lookups).
    Revoke {
        /// The key id (or a longer prefix of the key's hash, or the whole hash).
        key_id: String,
        #[command(flatten)]
        store: KeyStoreArgs,
    },
}

#[derive(Subcommand)]
enum Command {
    /// The whole system in one process: API, queue workers, reconciler, provider simulators.
    Dev {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "EXECUTOR_BIND")]
        bind: SocketAddr,
        /// Data directory (SQLite database and blobs).
        #[arg(long, default_value = ".executor", env = "EXECUTOR_DATA_DIR")]
        data_dir: PathBuf,
        /// Bundles directory.
        #[arg(long, env = "EXECUTOR_BUNDLES_DIR")]
        bundles: Option<PathBuf>,
        /// Talk to the real providers (credentials from the environment) instead of the simulators.
        #[arg(long)]
        no_simulators: bool,
        /// Multiply bundle poll cadences and retry delays (e.g. 0.1 to go ten times faster).
        #[arg(long)]
        time_scale: Option<f64>,
        /// Configuration file (all limits; see `executor config`).
        #[arg(long, env = "EXECUTOR_CONFIG")]
        config: Option<PathBuf>,
        /// `embedded` (SQLite + files) or `aws` (the Lambda handlers against --endpoint and --redis).
        #[arg(long, default_value = "embedded")]
        backend: String,
        /// AWS endpoint for `--backend aws` (moto server or LocalStack).
        #[arg(long, default_value = "http://127.0.0.1:5000")]
        endpoint: String,
        /// Redis URL of the inflight limiter for `--backend aws` (default: the DynamoDB
        /// limiter, leases in the table).
        #[arg(long)]
        redis: Option<String>,
        /// Name of the table, bucket and queue prefix for `--backend aws` (made if missing).
        #[arg(long, default_value = "executor-dev")]
        aws_prefix: String,
        /// The dev tenant's API key (a random one is made and printed otherwise).
        #[arg(long, env = "EXECUTOR_DEV_API_KEY")]
        api_key: Option<String>,
        /// Secret that signs outbound customer webhooks (`whsec_` + base64 key, Standard
        /// Webhooks); a fixed development secret otherwise, printed at start.
        #[arg(long, env = "EXECUTOR_WEBHOOK_SECRET")]
        webhook_secret: Option<String>,
    },
    /// Submit one execution, follow it through the lifecycle, print the normalized outcome.
    Run {
        /// Model id (see `GET /v1/models`).
        model: String,
        /// Input JSON.
        #[arg(long)]
        input: String,
        /// API base URL; without it a local system with simulators is started for this run.
        #[arg(long, env = "EXECUTOR_URL")]
        server: Option<String>,
        /// API key (with --server).
        #[arg(long, env = "EXECUTOR_API_KEY")]
        key: Option<String>,
        /// Customer webhook for the outcome.
        #[arg(long)]
        webhook: Option<String>,
        /// Idempotency key.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Maximum duration in seconds.
        #[arg(long)]
        max_duration: Option<u64>,
        /// Print only the outcome JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective configuration (file + `EXECUTOR__*` environment) as TOML.
    Config {
        /// Configuration file.
        #[arg(long, env = "EXECUTOR_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the OpenAPI 3.1 document of the HTTP API (the same one `GET /openapi.json` serves).
    Openapi,
    /// Work with bundles.
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// Run only the provider simulators (for `executor dev --no-simulators` pointed at them
    /// with `EXECUTOR_<PROVIDER>_BASE_URL`, or for bundle work).
    Simulators {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9090")]
        bind: SocketAddr,
    },
    /// Show the full timeline of an execution: every transition, provider call, failure, wait,
    /// callback and delivery.
    Explain {
        /// Execution id.
        id: String,
        /// API base URL.
        #[arg(long, env = "EXECUTOR_URL", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// API key.
        #[arg(long, env = "EXECUTOR_API_KEY")]
        key: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Failed and degraded executions grouped into piles (error class, provider, model,
    /// normalized provider message), most frequent first, with counts, first/last seen and an
    /// example execution per pile.
    #[command(subcommand_negates_reqs = true)]
    Failures {
        /// `rerun PILE [--dry-run]`: rerun a pile after a fix.
        #[command(subcommand)]
        command: Option<FailuresCommand>,
        /// Window: a duration such as 90m, 24h or 7d.
        #[arg(long, default_value = "24h")]
        since: String,
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
        /// Only this provider.
        #[arg(long)]
        provider: Option<String>,
        /// API base URL.
        #[arg(long, env = "EXECUTOR_URL", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// API key.
        #[arg(long, env = "EXECUTOR_API_KEY")]
        key: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rerun an execution: a new one with the same request (optionally on another model),
    /// linked to it. Prints the new execution.
    Rerun {
        /// Execution id.
        id: String,
        /// Another model to run the same input on.
        #[arg(long)]
        model: Option<String>,
        /// Idempotency key.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Batches: up to 100 executions created as one, followed as one.
    Batch {
        #[command(subcommand)]
        command: BatchCommand,
    },
    /// Deliver parked outcomes again: the given executions whose delivery is `degraded`, or all of the
    /// key's with `--all`. Exits 1 if any delivery fails again.
    Redrive {
        /// Execution ids.
        ids: Vec<String>,
        /// Every execution of the key's tenant whose delivery is degraded.
        #[arg(long)]
        all: bool,
        /// API base URL.
        #[arg(long, env = "EXECUTOR_URL", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// API key.
        #[arg(long, env = "EXECUTOR_API_KEY")]
        key: String,
    },
    /// Find executions overdue for their next step (lost messages, ambiguous submits, pending
    /// outboxes), re-drive them once, and report what was done. `executor dev` and the AWS
    /// schedule run the same pass periodically; this runs it now.
    Reconcile {
        /// `embedded` (the data directory of `executor dev`) or `aws` (the resources named by
        /// the functions' environment: EXECUTOR_TABLE, EXECUTOR_BUCKET, EXECUTOR_*_QUEUE_URL,
        /// EXECUTOR_OUTCOME_QUEUE_URL, EXECUTOR_REDIS_URL, AWS_ENDPOINT_URL).
        #[arg(long, default_value = "embedded")]
        backend: String,
        /// Data directory (embedded).
        #[arg(long, default_value = ".executor", env = "EXECUTOR_DATA_DIR")]
        data_dir: PathBuf,
        /// Bundles directory.
        #[arg(long, env = "EXECUTOR_BUNDLES_DIR")]
        bundles: Option<PathBuf>,
        /// Configuration file (embedded; the reconcile grace period is read from it).
        #[arg(long, env = "EXECUTOR_CONFIG")]
        config: Option<PathBuf>,
        /// Secret that signs outbound customer webhooks (an outbox may hold a delivery).
        #[arg(long, env = "EXECUTOR_WEBHOOK_SECRET")]
        webhook_secret: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure the embedded backend with instant simulators: overhead per transition and per
    /// execution for each shape, throughput at growing store sizes, memory per in-flight
    /// execution (see docs/benchmarks.md).
    Bench {
        /// Executions per shape for the overhead figures.
        #[arg(long, default_value_t = 300)]
        overhead_samples: usize,
        /// Executions per measured throughput batch.
        #[arg(long, default_value_t = 2000)]
        batch: usize,
        /// Concurrent API clients.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Consumers per queue.
        #[arg(long, default_value_t = 32)]
        workers: usize,
        /// Store sizes at which to measure throughput (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
        store_sizes: Vec<usize>,
        /// Executions held in flight for the memory figure (0 skips it).
        #[arg(long, default_value_t = 2000)]
        inflight: usize,
        /// Print JSON instead of Markdown tables.
        #[arg(long)]
        json: bool,
    },
    /// A closed-loop HTTP load generator (POST a JSON body), for side-by-side runs against
    /// other servers: prints throughput and latency percentiles as JSON.
    Load {
        /// Target URL.
        url: String,
        /// JSON body.
        #[arg(long)]
        body: String,
        /// Extra header `Name: value` (repeatable).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Measured requests.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Unmeasured requests first.
        #[arg(long, default_value_t = 50)]
        warmup: usize,
    },
    /// API keys: create, list, revoke (embedded data directory or a deployed DynamoDB table).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Start everything embedded, run a mixed batch over every bundle and shape with injected
    /// faults, print a summary; exit 0 when every execution ended as expected.
    Demo {
        /// Print results as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EXECUTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Dev {
            bind,
            data_dir,
            bundles,
            no_simulators,
            time_scale,
            config,
            backend,
            endpoint,
            redis,
            aws_prefix,
            api_key,
            webhook_secret,
        } => {
            init_logs("info");
            let cfg = executor_cli::config::Config::load(
                config
                    .as_deref()
                    .unwrap_or(std::path::Path::new("executor.toml")),
                config.is_some(),
            )?;
            let time_scale = time_scale.unwrap_or(cfg.lifecycle.time_scale);
            if let Some(k) = &api_key {
                executor_cli::keys::check_key_text(k)?;
            }
            if backend == "aws" {
                executor_cli::aws_dev::run(executor_cli::aws_dev::AwsDevOptions {
                    bind,
                    endpoint,
                    redis_url: redis,
                    prefix: aws_prefix,
                    simulators: !no_simulators,
                    time_scale,
                    api_key,
                })
                .await?;
                return Ok(0);
            }
            if backend != "embedded" {
                bail!("--backend must be `embedded` or `aws`, not `{backend}`");
            }
            let mut opts = LocalOptions::dev(data_dir.clone());
            opts.apply(&cfg);
            // Development: customer webhooks may target this machine (explicitly; a deployment
            // keeps the configured policy, which refuses loopback by default).
            opts.lifecycle.webhook_targets.allow_loopback = true;
            opts.bind = bind;
            if let Some(b) = bundles {
                opts.bundles_dir = b;
            }
            if no_simulators {
                opts.simulators = None;
            }
            opts.lifecycle.time_scale = time_scale;
            if let Some(k) = api_key {
                opts.dev_key = Some(k);
            }
            if let Some(s) = webhook_secret {
                opts.webhook_secret = s;
            }
            // Print the signing secret only when it is the built-in development one.
            let secret =
                if opts.webhook_secret == LocalOptions::dev(data_dir.clone()).webhook_secret {
                    opts.webhook_secret.clone()
                } else {
                    "(the one given with --webhook-secret / EXECUTOR_WEBHOOK_SECRET)".to_string()
                };
            let sys = LocalSystem::start(opts).await?;
            println!("executor dev listening on {}", sys.url);
            println!("data directory: {}", data_dir.display());
            println!("dev API key (tenant 'dev'): {}", sys.dev_key);
            println!("customer webhooks signed with (Standard Webhooks): {secret}");
            if let Some(s) = &sys.simulators {
                println!("provider simulators on http://{}", s.addr());
            }
            println!(
                "try: curl -s {}/v1/models -H 'Authorization: Bearer {}'",
                sys.url, sys.dev_key
            );
            println!("web page: {}/#/?key={}", sys.url, sys.dev_key);
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            sys.stop().await;
            Ok(0)
        }
        Command::Run {
            model,
            input,
            server,
            key,
            webhook,
            idempotency_key,
            max_duration,
            json,
        } => {
            init_logs("warn");
            let input: serde_json::Value =
                serde_json::from_str(&input).context("--input is not valid JSON")?;
            let mut local = None;
            let client = match server {
                Some(url) => {
                    let Some(key) = key else {
                        bail!("--key (or EXECUTOR_API_KEY) is required with --server")
                    };
                    Client::new(&url, &key)?
                }
                None => {
                    let dir = tempfile::tempdir()?;
                    let sys =
                        LocalSystem::start(LocalOptions::dev(dir.path().to_path_buf())).await?;
                    let c = Client::new(&sys.url, &sys.dev_key)?;
                    local = Some((sys, dir));
                    c
                }
            };
            let opts = CreateOptions {
                webhook_url: webhook,
                idempotency_key,
                max_duration_seconds: max_duration,
                wait_seconds: None,
            };
            let started = Instant::now();
            let (status, body) = client.create(&model, &input, &opts).await?;
            if status >= 400 {
                eprintln!(
                    "rejected ({status}): {} [{}] field {}",
                    body["detail"].as_str().unwrap_or("?"),
                    body["error_class"].as_str().unwrap_or("-"),
                    body["field"].as_str().unwrap_or("-")
                );
                return Ok(1);
            }
            let id = body["id"].as_str().unwrap_or_default().to_string();
            if !json {
                println!("execution {id} ({model})");
            }
            let color = !json && std::io::IsTerminal::is_terminal(&std::io::stdout());
            // Live progress from the timeline's event stream (one line per transition).
            let v = client
                .follow_events(&id, Duration::from_secs(900), |t| {
                    if !json {
                        println!(
                            "  {:>7.2}s  {}",
                            started.elapsed().as_secs_f64(),
                            transition_line(t, color)
                        );
                    }
                })
                .await?;
            println!("{}", serde_json::to_string_pretty(&outcome_json(&v))?);
            if let Some((sys, _dir)) = local {
                sys.stop().await;
            }
            let outcome = outcome_of(&v);
            if outcome == "succeeded" && v["delivery"]["state"] != "degraded" {
                Ok(0)
            } else {
                eprintln!(
                    "execution {outcome}: {}",
                    v["error"]["class"]
                        .as_str()
                        .or(v["delivery_error"]["class"].as_str())
                        .unwrap_or("-")
                );
                Ok(1)
            }
        }
        Command::Bench {
            overhead_samples,
            batch,
            clients,
            workers,
            store_sizes,
            inflight,
            json,
        } => {
            init_logs("error");
            let opts = executor_cli::bench::BenchOptions {
                overhead_samples,
                batch,
                clients,
                workers,
                store_sizes,
                inflight,
            };
            let report = executor_cli::bench::run(&opts).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", executor_cli::bench::markdown(&report));
            }
            Ok(0)
        }
        Command::Load {
            url,
            body,
            headers,
            concurrency,
            requests,
            warmup,
        } => {
            let body: serde_json::Value =
                serde_json::from_str(&body).context("--body is not JSON")?;
            let mut hs = Vec::new();
            for h in headers {
                let (k, v) = h
                    .split_once(':')
                    .with_context(|| format!("header {h:?} is not `Name: value`"))?;
                hs.push((k.trim().to_string(), v.trim().to_string()));
            }
            let report =
                executor_cli::bench::load(&url, &hs, &body, concurrency, requests, warmup).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(if report.errors == 0 { 0 } else { 1 })
        }
        Command::Config { config } => {
            let cfg = executor_cli::config::Config::load(
                config
                    .as_deref()
                    .unwrap_or(std::path::Path::new("executor.toml")),
                config.is_some(),
            )?;
            print!("{}", cfg.to_toml());
            Ok(0)
        }
        Command::Bundle {
            command: BundleCommand::Check { path },
        } => {
            let path = path.unwrap_or_else(executor_cli::local::default_bundles_dir);
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
        Command::Bundle {
            command:
                BundleCommand::Import {
                    platform,
                    model,
                    schema,
                    stdout,
                    bundles,
                },
        } => {
            let doc = read_document(&schema)?;
            let text = match platform.as_str() {
                "replicate" => executor_cli::import::import_replicate(&model, &doc)?,
                "fal" => executor_cli::import::import_fal(&model, &doc)?,
                other => bail!(
                    "import {other}: platforms are replicate and fal (any provider: executor bundle scaffold)"
                ),
            };
            if stdout {
                print!("{text}");
                return Ok(0);
            }
            let dir = bundles.unwrap_or_else(executor_cli::local::default_bundles_dir);
            let file = dir.join(format!(
                "{platform}-{}.yaml",
                model.trim_start_matches('/').replace(['/', '.'], "-")
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
        Command::Bundle {
            command:
                BundleCommand::Scaffold {
                    provider,
                    from_openapi,
                    operation,
                },
        } => {
            let doc = read_document(&from_openapi)?;
            print!(
                "{}",
                executor_cli::import::scaffold(&provider, &doc, &operation)?
            );
            Ok(0)
        }
        Command::Bundle {
            command: BundleCommand::Infer { fixtures },
        } => {
            let mut list = Vec::new();
            for f in executor_cli::replay::fixture_files(&fixtures)? {
                list.push(executor_cli::replay::read_fixture(&f)?);
            }
            if list.is_empty() {
                bail!("{}: no fixture files", fixtures.display());
            }
            let patch = executor_cli::infer::propose(&list);
            println!(
                "# Proposed by `executor bundle infer` from {} fixture(s) in {}: review before use.",
                list.len(),
                fixtures.display()
            );
            print!("{}", serde_yaml_ng::to_string(&patch)?);
            Ok(0)
        }
        Command::Bundle {
            command:
                BundleCommand::Conformance {
                    model,
                    fixtures,
                    bundles,
                },
        } => {
            use executor_cli::replay;
            let bundles_dir = bundles.unwrap_or_else(executor_cli::local::default_bundles_dir);
            let fixtures_dir = fixtures.unwrap_or_else(|| bundles_dir.join("fixtures"));
            let all = replay::bundles_by_id(&bundles_dir)?;
            let chosen: Vec<&String> = if model == "all" {
                all.keys().collect()
            } else if all.contains_key(&model) {
                vec![all.keys().find(|k| **k == model).unwrap_or(&model)]
            } else {
                bail!(
                    "{model}: not a model id in {} (or `all`)",
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
                for c in executor_cli::conformance::checklist(bundle, &fixtures) {
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
        Command::Bundle {
            command:
                BundleCommand::Test {
                    bundle,
                    fixtures,
                    bundles,
                    bless,
                },
        } => {
            use executor_cli::replay;
            let bundles_dir = bundles.unwrap_or_else(executor_cli::local::default_bundles_dir);
            let fixtures_dir = fixtures.unwrap_or_else(|| bundles_dir.join("fixtures"));
            let all = replay::bundles_by_id(&bundles_dir)?;
            let chosen: Vec<(String, PathBuf)> = if bundle == "all" {
                all.iter()
                    .map(|(id, (f, _))| (id.clone(), f.clone()))
                    .collect()
            } else if let Some((f, _)) = all.get(&bundle) {
                vec![(bundle.clone(), f.clone())]
            } else {
                let p = PathBuf::from(&bundle);
                match all.iter().find(|(_, (f, _))| {
                    f.canonicalize().ok() == p.canonicalize().ok() && p.exists()
                }) {
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
                use futures::StreamExt as _;
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
                    } else if let (true, Some(actual)) = (bless, r.actual.as_ref()) {
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
        Command::Bundle {
            command:
                BundleCommand::Record {
                    model,
                    input,
                    name,
                    description,
                    against,
                    fixtures,
                    bundles,
                },
        } => {
            use executor_cli::replay;
            let bundles_dir = bundles.unwrap_or_else(executor_cli::local::default_bundles_dir);
            let fixtures_dir = fixtures.unwrap_or_else(|| bundles_dir.join("fixtures"));
            let input: serde_json::Value =
                serde_json::from_str(&input).context("--input is not JSON")?;
            let target = match against.as_str() {
                "simulator" => replay::Target::Simulators,
                "provider" => replay::Target::Provider,
                other => bail!("--against {other}: use simulator or provider"),
            };
            if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
                bail!("--name {name:?}: use a plain file name");
            }
            let fixture =
                replay::record(&bundles_dir, &model, input, &name, &description, target).await?;
            let all = replay::bundles_by_id(&bundles_dir)?;
            let file = &all[&model].0;
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
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&executor_api::openapi::document_json())?
            );
            Ok(0)
        }
        Command::Simulators { bind } => {
            init_logs("warn");
            let sims = executor_simulators::Simulators::start_on(
                bind,
                executor_simulators::SimConfig::default(),
            )
            .await?;
            for p in executor_simulators::Provider::ALL.map(|p| p.as_str()) {
                println!(
                    "EXECUTOR_{}_BASE_URL={}",
                    p.to_uppercase(),
                    sims.base_url(p)
                );
            }
            println!(
                "REPLICATE_WEBHOOK_SECRET={}",
                sims.replicate_webhook_secret()
            );
            println!("FAL_WEBHOOK_PUBLIC_KEYS={}", sims.fal_public_key_b64url());
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            Ok(0)
        }
        Command::Explain {
            id,
            server,
            key,
            json,
        } => {
            let client = Client::new(&server, &key)?;
            let view = client.get(&id).await?;
            let events = client.events(&id).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"execution": view, "events": events["data"]})
                    )?
                );
            } else {
                let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
                print!("{}", executor_cli::render::explain(&view, &events, color));
            }
            Ok(0)
        }
        Command::Failures {
            command:
                Some(FailuresCommand::Rerun {
                    pile,
                    dry_run,
                    to_model,
                    since,
                    model,
                    provider,
                    server,
                    json,
                }),
            ..
        } => {
            let client = Client::new(&server.server, &server.key)?;
            let opts = executor_cli::reruns::RerunPileOptions {
                since,
                model,
                provider,
                to_model,
                dry_run,
            };
            let report = executor_cli::reruns::rerun_pile(&client, &pile, &opts).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            Ok(i32::from(report.failed() > 0))
        }
        Command::Rerun {
            id,
            model,
            idempotency_key,
            server,
        } => {
            let client = Client::new(&server.server, &server.key)?;
            let (status, body) = client
                .rerun(&id, model.as_deref(), idempotency_key.as_deref())
                .await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
            Ok(i32::from(status >= 300))
        }
        Command::Batch { command } => match command {
            BatchCommand::Create {
                model,
                inputs,
                idempotency_key,
                server,
            } => {
                let client = Client::new(&server.server, &server.key)?;
                let mut items = Vec::new();
                for (i, input) in inputs.iter().enumerate() {
                    let input: serde_json::Value = serde_json::from_str(input)
                        .with_context(|| format!("--input number {} is not JSON", i + 1))?;
                    items.push(serde_json::json!({"input": input}));
                }
                let body = serde_json::json!({"model": model, "items": items});
                let (status, body) = client
                    .create_batch(&body, idempotency_key.as_deref())
                    .await?;
                println!("{}", serde_json::to_string_pretty(&body)?);
                Ok(i32::from(status >= 300))
            }
            BatchCommand::Get { id, server } => {
                let client = Client::new(&server.server, &server.key)?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&client.batch(&id).await?)?
                );
                Ok(0)
            }
        },
        Command::Failures {
            command: None,
            since,
            model,
            provider,
            server,
            key,
            json,
        } => {
            let client = Client::new(&server, &key)?;
            let piles = client
                .failures(&since, model.as_deref(), provider.as_deref())
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&piles)?);
            } else {
                let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
                print!("{}", executor_cli::render::failures(&piles, color));
            }
            Ok(0)
        }
        Command::Reconcile {
            backend,
            data_dir,
            bundles,
            config,
            webhook_secret,
            json,
        } => {
            let report = match backend.as_str() {
                "embedded" => {
                    let cfg = executor_cli::config::Config::load(
                        config
                            .as_deref()
                            .unwrap_or(std::path::Path::new("executor.toml")),
                        config.is_some(),
                    )?;
                    let mut opts = LocalOptions::dev(data_dir);
                    opts.apply(&cfg);
                    opts.lifecycle.webhook_targets.allow_loopback = true;
                    if let Some(b) = bundles {
                        opts.bundles_dir = b;
                    }
                    if let Some(s) = webhook_secret {
                        opts.webhook_secret = s;
                    }
                    executor_cli::local::reconcile_once(opts).await?
                }
                "aws" => {
                    if let Some(b) = bundles {
                        bail!(
                            "--bundles is not used with --backend aws; set EXECUTOR_BUNDLES_DIR={} instead",
                            b.display()
                        );
                    }
                    let app = executor_lambda::App::from_env().await?;
                    let ev = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"});
                    serde_json::from_value(app.dispatch(ev).await?)?
                }
                other => bail!("--backend must be `embedded` or `aws`, not `{other}`"),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", executor_cli::render::reconcile(&report));
            }
            Ok(0)
        }
        Command::Redrive {
            ids,
            all,
            server,
            key,
        } => {
            let client = Client::new(&server, &key)?;
            let ids = if all {
                client.ids_where(&[("delivery", "degraded")]).await?
            } else if ids.is_empty() {
                bail!("name the executions to redrive, or pass --all");
            } else {
                ids
            };
            let mut failed = 0;
            for id in &ids {
                let (status, body) = client.redrive(id).await?;
                if status == 200 {
                    println!(
                        "{id}: delivered ({}, delivery {})",
                        body["status"].as_str().unwrap_or("?"),
                        body["delivery"]["state"].as_str().unwrap_or("?")
                    );
                } else {
                    failed += 1;
                    println!(
                        "{id}: {status} {}",
                        body["detail"].as_str().unwrap_or("no detail")
                    );
                }
            }
            println!("{} redriven, {failed} failed", ids.len() - failed);
            Ok(i32::from(failed > 0))
        }
        Command::Keys { command } => keys(command).await,
        Command::Demo { json } => {
            init_logs("error");
            let dir = tempfile::tempdir()?;
            let mut opts = LocalOptions::dev(dir.path().to_path_buf());
            opts.lifecycle.time_scale = 0.02;
            opts.reconcile_every_ms = 1_000;
            let started = Instant::now();
            let sys = LocalSystem::start(opts).await?;
            let results = demo::run(&sys).await?;
            let elapsed = started.elapsed();
            sys.stop().await;
            let all_ok = results.iter().all(|r| r.ok);
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                let mut t = Table::new();
                t.load_preset(comfy_table::presets::ASCII_FULL_CONDENSED);
                t.set_header(vec![
                    "model",
                    "case",
                    "expected",
                    "outcome",
                    "error class",
                    "cost $",
                    "",
                ]);
                for r in &results {
                    t.add_row(vec![
                        r.model.clone(),
                        r.name.clone(),
                        r.expected.clone(),
                        r.outcome.clone(),
                        r.error_class.clone().unwrap_or_else(|| "-".into()),
                        format!("{:.4}", r.cost_usd),
                        if r.ok {
                            "ok".into()
                        } else {
                            "UNEXPECTED".into()
                        },
                    ]);
                }
                println!("{t}");
                let mut s = Table::new();
                s.load_preset(comfy_table::presets::ASCII_FULL_CONDENSED);
                s.set_header(vec!["outcome", "error class", "executions"]);
                for ((o, c), n) in demo::summary(&results) {
                    s.add_row(vec![o, c, n.to_string()]);
                }
                println!("{s}");
                println!(
                    "{} executions, {} as expected, {} unexpected, in {:.1}s",
                    results.len(),
                    results.iter().filter(|r| r.ok).count(),
                    results.iter().filter(|r| !r.ok).count(),
                    elapsed.as_secs_f64()
                );
            }
            Ok(if all_ok { 0 } else { 1 })
        }
    }
}

async fn keys(command: KeysCommand) -> Result<i32> {
    use executor_cli::keys::KeyStore;
    match command {
        KeysCommand::Create { tenant, store } => {
            executor_api::validate_tenant(&tenant).map_err(anyhow::Error::msg)?;
            let store = KeyStore::open(&store.location()?).await?;
            let (key, id) = store.create(&tenant).await?;
            eprintln!(
                "created API key {id} for tenant {tenant}; it is shown only now (only its SHA-256 hash is stored):"
            );
            println!("{key}");
            Ok(0)
        }
        KeysCommand::List {
            tenant,
            json,
            store,
        } => {
            let store = KeyStore::open(&store.location()?).await?;
            let keys: Vec<_> = store
                .list()
                .await?
                .into_iter()
                .filter(|k| tenant.as_ref().is_none_or(|t| &k.tenant == t))
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                println!("no API keys");
            } else {
                let mut t = Table::new();
                t.load_preset(comfy_table::presets::NOTHING);
                t.set_header(vec!["KEY ID", "TENANT", "CREATED"]);
                for k in &keys {
                    t.add_row(vec![
                        k.key_id.clone(),
                        k.tenant.clone(),
                        k.created_at.clone(),
                    ]);
                }
                println!("{t}");
            }
            Ok(0)
        }
        KeysCommand::Revoke { key_id, store } => {
            let aws = store.backend == "aws";
            let store = KeyStore::open(&store.location()?).await?;
            let revoked = store.revoke(&key_id).await?;
            let what = match &revoked {
                Some(k) => format!("{} (tenant {})", k.key_id, k.tenant),
                None => key_id.trim().to_ascii_lowercase(),
            };
            if aws {
                println!(
                    "revoked API key {what}; warm functions cache key lookups, so it stops working within 60 s"
                );
            } else {
                println!("revoked API key {what}; the API refuses it from now on");
            }
            Ok(0)
        }
    }
}

/// A JSON or YAML document from a file, or stdin for `-`.
fn read_document(path: &std::path::Path) -> Result<serde_json::Value> {
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

/// One line of `executor run`'s live progress: a transition of the timeline.
fn transition_line(t: &serde_json::Value, _color: bool) -> String {
    let mut line = format!(
        "{} → {}",
        t["action"].as_str().unwrap_or("?"),
        t["to"].as_str().unwrap_or("?")
    );
    if let Some(p) = t["detail"]["progress"].as_f64() {
        line.push_str(&format!(" {:.0}%", p * 100.0));
    }
    if let Some(c) = t["failure"]["class"].as_str() {
        line.push_str(&format!(
            " ({c}: {})",
            t["failure"]["message"].as_str().unwrap_or("")
        ));
    }
    let calls = t["calls"].as_array().map(|a| a.len()).unwrap_or(0);
    if calls > 0 {
        line.push_str(&format!(" [{calls} provider call(s)]"));
    }
    line
}
