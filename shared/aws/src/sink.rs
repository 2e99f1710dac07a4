//! The outcome destination on AWS: an SQS queue downstream billing/CRM consumers read. Each
//! message carries the stable event id (also as a message attribute) so consumers
//! deduplicate; publishing the same event twice is harmless.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use executor_lifecycle::{EventSink, OutcomeEvent, StoreError};

/// Outcome events to SQS.
pub struct SqsOutcomeSink {
    client: Client,
    url: String,
}

impl SqsOutcomeSink {
    /// A sink on the queue at `url`.
    pub fn new(client: Client, url: String) -> SqsOutcomeSink {
        SqsOutcomeSink { client, url }
    }
}

#[async_trait]
impl EventSink for SqsOutcomeSink {
    async fn publish(&self, event: &OutcomeEvent) -> Result<(), StoreError> {
        let body = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        use executor_lifecycle::limits;
        limits::check(
            "an outcome event",
            body.len(),
            limits::OUTCOME_EVENT_MAX_BYTES,
        )?;
        let attr = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&event.id)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_attributes("event_id", attr)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "sqs outcome: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                ))
            })
    }
}
