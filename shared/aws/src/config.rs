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
    /// Redis (`EXECUTOR_REDIS_URL`).
    pub redis_url: String,
    /// Endpoint override for all AWS services (`AWS_ENDPOINT_URL`), e.g. moto server.
    pub endpoint_url: Option<String>,
    /// Region (`AWS_REGION`, default us-east-1).
    pub region: String,
    /// Path-style S3 addressing (`EXECUTOR_S3_PATH_STYLE`), needed for local endpoints.
    pub s3_path_style: bool,
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
            redis_url: var("EXECUTOR_REDIS_URL")?,
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
