//! `executor dev --backend aws`: the Lambda handlers against moto server (or LocalStack) and
//! Redis on one machine. The API router is served as API Gateway would, and an in-process
//! event source mapping long-polls the three SQS queues and calls the handlers with real
//! `SqsEvent` batches, honouring partial batch failures — the AWS path end to end.

use anyhow::{Context, Result};
use executor_api::hash_api_key;
use executor_bundles::CatalogOptions;
use executor_lambda::App;
use executor_lambda::esm::{self, MappingConfig};
use executor_lifecycle::{LifecycleConfig, QueueName};
use executor_simulators::{SimConfig, Simulators};
use executor_system::dev;
use std::net::SocketAddr;
use std::sync::Arc;

/// Options of the local AWS mode.
pub struct AwsDevOptions {
    /// API listen address.
    pub bind: SocketAddr,
    /// AWS endpoint (moto server).
    pub endpoint: String,
    /// Redis URL of the inflight limiter (none: the DynamoDB limiter in the table).
    pub redis_url: Option<String>,
    /// Resource name prefix.
    pub prefix: String,
    /// Start simulators.
    pub simulators: bool,
    /// Time scale.
    pub time_scale: f64,
    /// The dev tenant's API key (`--api-key`); a random one when None.
    pub api_key: Option<String>,
}

/// Runs until Ctrl-C.
pub async fn run(opts: AwsDevOptions) -> Result<()> {
    let cfg = executor_lambda::local::ensure_resources(
        &opts.prefix,
        &opts.endpoint,
        opts.redis_url.clone().map_or(
            executor_lambda::local::LimiterChoice::DynamoDb,
            executor_lambda::local::LimiterChoice::Redis,
        ),
    )
    .await?;
    let sims = if opts.simulators {
        Some(Simulators::start(SimConfig::default()).await?)
    } else {
        None
    };
    let mut catalog = CatalogOptions::from_env();
    if let Some(s) = &sims {
        dev::point_at_simulators(&mut catalog, s);
    }
    let listener = tokio::net::TcpListener::bind(opts.bind)
        .await
        .with_context(|| format!("binding {}", opts.bind))?;
    let url = format!("http://{}", listener.local_addr()?);
    let lifecycle = LifecycleConfig {
        public_base_url: url.clone(),
        time_scale: opts.time_scale,
        // Development: customer webhooks may target this machine (explicitly).
        webhook_targets: executor_lifecycle::netguard::OutboundPolicy::dev(),
        ..Default::default()
    };
    let secret =
        std::env::var("EXECUTOR_WEBHOOK_SECRET").unwrap_or_else(|_| dev::DEV_WEBHOOK_SECRET.into());
    let app = Arc::new(App::build(&cfg, lifecycle, catalog, &secret).await?);
    let key = dev::dev_key(opts.api_key)?;
    executor_api::validate_tenant(dev::DEV_TENANT).map_err(anyhow::Error::msg)?;
    app.backend
        .guards
        .add_api_key(dev::DEV_TENANT, &hash_api_key(&key))
        .await?;
    let sdk = cfg.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (shutdown, rx) = tokio::sync::watch::channel(false);
    for q in QueueName::ALL {
        let m = MappingConfig {
            queue_url: cfg.queues[&q].url.clone(),
            queue_arn: format!(
                "arn:aws:sqs:{}:000000000000:{}-{}",
                cfg.region,
                opts.prefix,
                q.as_str()
            ),
            batch_size: 10,
            visibility_timeout: 60,
            max_concurrency: 4,
        };
        tokio::spawn(esm::run(app.clone(), sqs.clone(), m, rx.clone()));
    }
    let reconciler = app.clone();
    let mut rx2 = rx.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
                _ = rx2.changed() => break,
            }
            let ev = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"});
            if let Err(e) = reconciler.dispatch(ev).await {
                tracing::warn!(error = %e, "reconcile failed");
            }
        }
    });
    println!(
        "executor dev (aws backend at {}) listening on {url}",
        opts.endpoint
    );
    println!("dev API key (tenant '{}'): {key}", dev::DEV_TENANT);
    println!("environment of the functions (for `cargo lambda watch`):");
    println!(
        "  AWS_ENDPOINT_URL={} EXECUTOR_S3_PATH_STYLE=true",
        opts.endpoint
    );
    let limiter = match &cfg.limiter {
        executor_lambda::local::LimiterChoice::DynamoDb => "EXECUTOR_LIMITER=dynamodb".to_string(),
        executor_lambda::local::LimiterChoice::Redis(url) => {
            format!("EXECUTOR_LIMITER=redis EXECUTOR_REDIS_URL={url}")
        }
    };
    println!(
        "  EXECUTOR_TABLE={} EXECUTOR_BUCKET={} {limiter}",
        cfg.table, cfg.bucket
    );
    for q in QueueName::ALL {
        println!(
            "  EXECUTOR_{}_QUEUE_URL={}",
            q.as_str().to_uppercase(),
            cfg.queues[&q].url
        );
    }
    println!(
        "  EXECUTOR_OUTCOME_QUEUE_URL={} EXECUTOR_PUBLIC_URL={url} EXECUTOR_WEBHOOK_SECRET={secret}",
        cfg.outcome_queue_url
    );
    let mut rx3 = rx.clone();
    let server = axum::serve(listener, app.router()).with_graceful_shutdown(async move {
        let _ = rx3.changed().await;
    });
    tokio::select! {
        r = server => r?,
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = shutdown.send(true);
    Ok(())
}
