//! Configuration of the AWS backend, from the environment, and the one-line setup errors.

use aws_config::BehaviorVersion;
use executor_lifecycle::QueueName;
use std::collections::HashMap;

/// Where everything is.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// DynamoDB table (`EXECUTOR_TABLE`).
    pub table: String,
    /// S3 bucket (`EXECUTOR_BUCKET`).
    pub bucket: String,
    /// Queue URLs (`EXECUTOR_{SUBMIT,POLL,FINALIZE}_QUEUE_URL`).
    pub queues: HashMap<QueueName, QueueUrls>,
    /// Outcome destination queue (`EXECUTOR_OUTCOME_QUEUE_URL`).
    pub outcome_queue_url: String,
    /// The inflight limiter (`EXECUTOR_LIMITER`: `dynamodb`, the default, or `redis` with
    /// `EXECUTOR_REDIS_URL`).
    pub limiter: LimiterChoice,
    /// The Secrets Manager secret holding provider credentials and signing secrets
    /// (`EXECUTOR_SECRET_ARN`); none: they come from the environment.
    pub secret_arn: Option<String>,
    /// Endpoint override for all AWS services (`AWS_ENDPOINT_URL`), e.g. moto server.
    pub endpoint_url: Option<String>,
    /// Region (`AWS_REGION`, default us-east-1).
    pub region: String,
    /// Path-style S3 addressing (`EXECUTOR_S3_PATH_STYLE`), needed for local endpoints.
    pub s3_path_style: bool,
}

/// Where inflight leases live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimiterChoice {
    /// Items of the execution table (no VPC needed).
    DynamoDb,
    /// A Redis server (`redis://`, or `rediss://` for TLS as ElastiCache Serverless requires).
    Redis(String),
}

impl LimiterChoice {
    /// From `EXECUTOR_LIMITER` and `EXECUTOR_REDIS_URL`: `dynamodb` unless Redis is asked for
    /// (an `EXECUTOR_REDIS_URL` alone also selects Redis, as before the DynamoDB limiter).
    pub fn from_env() -> Result<LimiterChoice, AwsSetupError> {
        let url = std::env::var("EXECUTOR_REDIS_URL")
            .ok()
            .filter(|v| !v.is_empty());
        match std::env::var("EXECUTOR_LIMITER").ok().as_deref() {
            None | Some("") => Ok(url.map_or(LimiterChoice::DynamoDb, LimiterChoice::Redis)),
            Some("dynamodb") => Ok(LimiterChoice::DynamoDb),
            Some("redis") => url.map(LimiterChoice::Redis).ok_or_else(|| {
                AwsSetupError("EXECUTOR_LIMITER=redis needs EXECUTOR_REDIS_URL".into())
            }),
            Some(other) => Err(AwsSetupError(format!(
                "EXECUTOR_LIMITER must be `dynamodb` or `redis`, not `{other}`"
            ))),
        }
    }
}

/// A queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct QueueUrls {
    /// The queue.
    pub url: String,
    /// Its dead-letter queue.
    pub dlq_url: Option<String>,
}

/// Setup failed: one line naming what is missing.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct AwsSetupError(pub String);

fn var(name: &str) -> Result<String, AwsSetupError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AwsSetupError(format!("missing environment variable {name}")))
}

impl AwsConfig {
    /// Reads the environment.
    pub fn from_env() -> Result<AwsConfig, AwsSetupError> {
        let mut queues = HashMap::new();
        for q in QueueName::ALL {
            let up = q.as_str().to_uppercase();
            queues.insert(
                q,
                QueueUrls {
                    url: var(&format!("EXECUTOR_{up}_QUEUE_URL"))?,
                    dlq_url: std::env::var(format!("EXECUTOR_{up}_DLQ_URL"))
                        .ok()
                        .filter(|v| !v.is_empty()),
                },
            );
        }
        Ok(AwsConfig {
            table: var("EXECUTOR_TABLE")?,
            bucket: var("EXECUTOR_BUCKET")?,
            queues,
            outcome_queue_url: var("EXECUTOR_OUTCOME_QUEUE_URL")?,
            limiter: LimiterChoice::from_env()?,
            secret_arn: std::env::var("EXECUTOR_SECRET_ARN")
                .ok()
                .filter(|v| !v.is_empty()),
            endpoint_url: std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|v| !v.is_empty()),
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            s3_path_style: std::env::var("EXECUTOR_S3_PATH_STYLE")
                .map(|v| v == "true" || v == "1")
                .unwrap_or(false),
        })
    }

    /// Where requests go, for error messages.
    pub fn endpoint(&self) -> String {
        self.endpoint_url
            .clone()
            .unwrap_or_else(|| format!("AWS {}", self.region))
    }

    /// The SDK configuration: rustls (ring) HTTPS client, region, optional endpoint.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .region(aws_config::Region::new(self.region.clone()));
        if let Some(e) = &self.endpoint_url {
            loader = loader.endpoint_url(e);
            // Local endpoints (moto, LocalStack) accept any credentials; don't make people
            // export fake ones.
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    "local",
                    "local",
                    None,
                    None,
                    "executor-local",
                ));
            }
        }
        loader.load().await
    }
}
