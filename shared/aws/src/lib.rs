//! The AWS backend: S3 blobs, a DynamoDB guard/index table, SQS queues, a Redis inflight
//! limiter and an SQS outcome destination, behind the lifecycle's ports. Endpoints are
//! configurable (`AWS_ENDPOINT_URL`), so the same code talks to AWS, moto server or
//! LocalStack. [`AwsBackend::connect`] checks every resource at start and fails with one line
//! naming what is missing.

pub mod config;
pub mod dynamo;
pub mod dynamo_limiter;
pub mod limiter;
pub mod metering;
pub mod s3;
pub mod secrets;
pub mod sink;
pub mod sqs;

pub use config::LimiterChoice;
pub use config::{AwsConfig, AwsSetupError};
pub use dynamo::DynamoGuardStore;
pub use dynamo_limiter::DynamoLimiter;
pub use limiter::{RedisLimiter, RedisMode};
pub use metering::RequestMeter;
pub use s3::S3BlobStore;
pub use sink::SqsOutcomeSink;
pub use sqs::SqsQueue;

use executor_lifecycle::Clock;
use std::sync::Arc;

/// The connected AWS ports.
pub struct AwsBackend {
    /// Blobs.
    pub blobs: Arc<S3BlobStore>,
    /// Guards, idempotency keys, API keys.
    pub guards: Arc<DynamoGuardStore>,
    /// Queues.
    pub queue: Arc<SqsQueue>,
    /// Limiter (DynamoDB or Redis, per [`AwsConfig::limiter`]).
    pub limiter: Arc<dyn executor_lifecycle::InflightLimiter>,
    /// The DynamoDB limiter when it is the one in use (its shard plan is set from the
    /// catalog's capacities).
    pub dynamo_limiter: Option<Arc<DynamoLimiter>>,
    /// Outcome destination.
    pub events: Arc<SqsOutcomeSink>,
    /// The deployment's secret, when `EXECUTOR_SECRET_ARN` names one.
    pub secrets: Option<Arc<secrets::SecretsCache>>,
}

impl AwsBackend {
    /// Builds the clients and checks that every resource exists and answers.
    pub async fn connect(
        cfg: &AwsConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<AwsBackend, AwsSetupError> {
        AwsBackend::connect_metered(cfg, clock, None).await
    }

    /// As [`AwsBackend::connect`], counting every AWS request the clients transmit in `meter`.
    pub async fn connect_metered(
        cfg: &AwsConfig,
        clock: Arc<dyn Clock>,
        meter: Option<RequestMeter>,
    ) -> Result<AwsBackend, AwsSetupError> {
        let sdk = cfg.sdk_config().await;
        let mut s3 = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(cfg.s3_path_style);
        let mut ddb = aws_sdk_dynamodb::config::Builder::from(&sdk);
        let mut sqs = aws_sdk_sqs::config::Builder::from(&sdk);
        let mut sm = aws_sdk_secretsmanager::config::Builder::from(&sdk);
        if let Some(m) = meter {
            s3 = s3.interceptor(m.clone());
            ddb = ddb.interceptor(m.clone());
            sm = sm.interceptor(m.clone());
            sqs = sqs.interceptor(m);
        }
        let secrets = match &cfg.secret_arn {
            Some(arn) => Some(Arc::new(
                secrets::SecretsCache::open(
                    aws_sdk_secretsmanager::Client::from_conf(sm.build()),
                    arn,
                )
                .await?,
            )),
            None => None,
        };
        let s3 = aws_sdk_s3::Client::from_conf(s3.build());
        let ddb = aws_sdk_dynamodb::Client::from_conf(ddb.build());
        let sqs = aws_sdk_sqs::Client::from_conf(sqs.build());
        let blobs = Arc::new(S3BlobStore::new(s3, cfg.bucket.clone()));
        blobs.check(cfg).await?;
        let guards = Arc::new(DynamoGuardStore::new(
            ddb.clone(),
            cfg.table.clone(),
            clock.clone(),
        ));
        guards.check(cfg).await?;
        let queue = Arc::new(SqsQueue::new(sqs.clone(), cfg.queues.clone()));
        queue.check(cfg).await?;
        let events = Arc::new(SqsOutcomeSink::new(sqs, cfg.outcome_queue_url.clone()));
        let (limiter, dynamo_limiter): (Arc<dyn executor_lifecycle::InflightLimiter>, _) =
            match &cfg.limiter {
                LimiterChoice::DynamoDb => {
                    let l = Arc::new(DynamoLimiter::new(ddb, cfg.table.clone(), clock));
                    (l.clone(), Some(l))
                }
                LimiterChoice::Redis(url) => {
                    (Arc::new(RedisLimiter::connect(url, clock).await?), None)
                }
            };
        Ok(AwsBackend {
            blobs,
            guards,
            queue,
            limiter,
            dynamo_limiter,
            events,
            secrets,
        })
    }
}
