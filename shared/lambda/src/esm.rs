//! An in-process event source mapping: long-polls an SQS queue and calls a function's
//! dispatcher with real `SqsEvent` batches, deleting the records the handler did not report
//! as failures — what Lambda's event source mapping does, on one machine against moto or
//! LocalStack.

use crate::App;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::watch;

/// Settings of one mapping.
#[derive(Debug, Clone)]
pub struct MappingConfig {
    /// Queue URL.
    pub queue_url: String,
    /// Queue ARN (for the records' `eventSourceARN`).
    pub queue_arn: String,
    /// Records per batch (1..=10).
    pub batch_size: i32,
    /// Visibility timeout of received messages (seconds).
    pub visibility_timeout: i32,
    /// Batches handled at once (the mapping's maximum concurrency).
    pub max_concurrency: usize,
}

/// One poll: receive a batch, dispatch it, delete what succeeded. Returns records handled.
pub async fn poll_once(app: &App, sqs: &Client, cfg: &MappingConfig) -> anyhow::Result<usize> {
    let out = sqs
        .receive_message()
        .queue_url(&cfg.queue_url)
        .max_number_of_messages(cfg.batch_size.clamp(1, 10))
        .visibility_timeout(cfg.visibility_timeout)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await?;
    let messages = out.messages();
    if messages.is_empty() {
        return Ok(0);
    }
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attrs: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), json!(v)))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attrs,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": cfg.queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    let response = app.dispatch(json!({ "Records": records })).await?;
    let failed: Vec<String> = response["batchItemFailures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for m in messages {
        if failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
            continue;
        }
        if let Some(r) = m.receipt_handle() {
            sqs.delete_message()
                .queue_url(&cfg.queue_url)
                .receipt_handle(r)
                .send()
                .await?;
        }
    }
    Ok(messages.len())
}

/// Runs a mapping until `shutdown` turns true.
pub async fn run(app: Arc<App>, sqs: Client, cfg: MappingConfig, shutdown: watch::Receiver<bool>) {
    let mut tasks = Vec::new();
    for _ in 0..cfg.max_concurrency.max(1) {
        let (app, sqs, cfg, shutdown) = (app.clone(), sqs.clone(), cfg.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            while !*shutdown.borrow() {
                if let Err(e) = poll_once(&app, &sqs, &cfg).await {
                    tracing::warn!(queue = %cfg.queue_url, error = %e, "event source mapping poll failed");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
