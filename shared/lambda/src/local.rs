//! Local AWS mode: create (if missing) the table, bucket and queues a deployment would have,
//! on moto server or LocalStack, and return the configuration pointing at them.

pub use executor_aws::LimiterChoice;
use executor_aws::config::QueueUrls;
use executor_aws::{AwsConfig, DynamoGuardStore};
use executor_lifecycle::{QueueName, SystemClock};
use std::collections::HashMap;
use std::sync::Arc;

/// Creates `{prefix}` resources at `endpoint` and returns their configuration.
pub async fn ensure_resources(
    prefix: &str,
    endpoint: &str,
    limiter: executor_aws::LimiterChoice,
) -> anyhow::Result<AwsConfig> {
    let mut cfg = AwsConfig {
        table: prefix.to_string(),
        bucket: prefix.to_string(),
        queues: HashMap::new(),
        outcome_queue_url: String::new(),
        limiter,
        secret_arn: None,
        endpoint_url: Some(endpoint.to_string()),
        region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        s3_path_style: true,
    };
    let sdk = cfg.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    if s3.head_bucket().bucket(&cfg.bucket).send().await.is_err() {
        s3.create_bucket()
            .bucket(&cfg.bucket)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "creating bucket {} at {endpoint}: {}",
                    cfg.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            })?;
    }
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let create = |name: String| {
        let sqs = sqs.clone();
        async move {
            sqs.create_queue()
                .queue_name(&name)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "creating queue {name}: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    )
                })
                .map(|o| o.queue_url().unwrap_or_default().to_string())
        }
    };
    for q in QueueName::ALL {
        let url = create(format!("{prefix}-{}", q.as_str())).await?;
        let dlq = create(format!("{prefix}-{}-dlq", q.as_str())).await?;
        cfg.queues.insert(
            q,
            QueueUrls {
                url,
                dlq_url: Some(dlq),
            },
        );
    }
    cfg.outcome_queue_url = create(format!("{prefix}-outcomes")).await?;
    DynamoGuardStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        cfg.table.clone(),
        Arc::new(SystemClock),
    )
    .create_table_if_missing()
    .await?;
    Ok(cfg)
}
