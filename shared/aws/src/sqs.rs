//! The three queues on SQS. Delays are whole seconds, at most 900 (SQS's limit): longer
//! waits are clamped, which only makes a message arrive early — harmless, because a message
//! names the version it advances and the handler re-checks due times and deadlines.

use crate::config::{AwsConfig, AwsSetupError, QueueUrls};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use executor_lifecycle::{Delivery, Queue, QueueName, StoreError};
use std::collections::HashMap;

/// SQS queues.
pub struct SqsQueue {
    client: Client,
    urls: HashMap<QueueName, QueueUrls>,
}

impl SqsQueue {
    /// The queue an event source ARN (`arn:aws:sqs:region:account:name`) names, matched by
    /// name against the configured queue URLs (`https://sqs.../account/name`).
    pub fn queue_for_arn(&self, arn: &str) -> Option<QueueName> {
        let name = arn.rsplit(':').next()?;
        self.urls
            .iter()
            .find(|(_, u)| u.url.trim_end_matches('/').rsplit('/').next() == Some(name))
            .map(|(q, _)| *q)
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("sqs: {e}"))
}

/// Milliseconds to whole SQS seconds (rounded up, at most 900).
pub fn delay_seconds(ms: u64) -> i32 {
    ms.div_ceil(1000).min(900) as i32
}

impl SqsQueue {
    /// Queues by name.
    pub fn new(client: Client, urls: HashMap<QueueName, QueueUrls>) -> SqsQueue {
        SqsQueue { client, urls }
    }

    fn url(&self, q: QueueName) -> Result<&QueueUrls, StoreError> {
        self.urls
            .get(&q)
            .ok_or_else(|| StoreError::Unavailable(format!("no URL for queue {}", q.as_str())))
    }

    /// Checks every queue exists.
    pub async fn check(&self, cfg: &AwsConfig) -> Result<(), AwsSetupError> {
        for (q, u) in &self.urls {
            self.client
                .get_queue_attributes()
                .queue_url(&u.url)
                .send()
                .await
                .map_err(|e| {
                    AwsSetupError(format!(
                        "SQS {} queue '{}' not reachable at {}: {}",
                        q.as_str(),
                        u.url,
                        cfg.endpoint(),
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    ))
                })?;
        }
        Ok(())
    }

    /// Sends up to ten bodies in one request.
    pub async fn send_batch(
        &self,
        queue: QueueName,
        bodies: &[(String, u64)],
    ) -> Result<(), StoreError> {
        for (b, _) in bodies {
            use executor_lifecycle::limits;
            limits::check("a queue message", b.len(), limits::SQS_MESSAGE_MAX_BYTES)?;
        }
        let url = &self.url(queue)?.url;
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (b, d))| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(b)
                        .delay_seconds(delay_seconds(*d))
                        .build()
                        .map_err(err)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| err(aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
            if !out.failed().is_empty() {
                return Err(err(format!("{} batch entries failed", out.failed().len())));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue: QueueName, body: &str, delay_ms: u64) -> Result<(), StoreError> {
        use executor_lifecycle::limits;
        limits::check("a queue message", body.len(), limits::SQS_MESSAGE_MAX_BYTES)?;
        self.client
            .send_message()
            .queue_url(&self.url(queue)?.url)
            .message_body(body)
            .delay_seconds(delay_seconds(delay_ms))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err(aws_sdk_sqs::error::DisplayErrorContext(&e)))
    }

    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility_ms: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url(queue)?.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(delay_seconds(visibility_ms).max(1))
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| err(aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                Some(Delivery {
                    receipt: m.receipt_handle()?.to_string(),
                    body: m.body().unwrap_or_default().to_string(),
                    receive_count: m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1),
                })
            })
            .collect())
    }

    async fn ack(&self, queue: QueueName, receipt: &str) -> Result<(), StoreError> {
        self.client
            .delete_message()
            .queue_url(&self.url(queue)?.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err(aws_sdk_sqs::error::DisplayErrorContext(&e)))
    }

    async fn retry_later(
        &self,
        queue: QueueName,
        receipt: &str,
        delay_ms: u64,
    ) -> Result<(), StoreError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url(queue)?.url)
            .receipt_handle(receipt)
            .visibility_timeout(delay_seconds(delay_ms))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err(aws_sdk_sqs::error::DisplayErrorContext(&e)))
    }

    async fn dead_letter(
        &self,
        queue: QueueName,
        receipt: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        // SQS moves a message to the DLQ by its redrive policy after maxReceiveCount; to
        // dead-letter now we copy it there with its body unchanged (a DLQ redrive sends it
        // back as it was), the queue and the reason as message attributes.
        let urls = self.url(queue)?;
        if let Some(dlq) = &urls.dlq_url {
            let attr = |v: &str| {
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()
                    .map_err(|e| err(e.to_string()))
            };
            let reason: String = reason.chars().take(1000).collect();
            self.client
                .send_message()
                .queue_url(dlq)
                .message_body(body)
                .message_attributes("dead_lettered_from", attr(queue.as_str())?)
                .message_attributes("reason", attr(&reason)?)
                .send()
                .await
                .map_err(|e| err(aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
        }
        self.ack(queue, receipt).await
    }

    async fn wait(&self, _queue: QueueName, _timeout_ms: u64) {
        // `receive` long-polls already.
    }
}
