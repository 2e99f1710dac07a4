//! SQS batches: each record is one message of the commit protocol; a record that fails (or
//! is malformed) is reported as a batch item failure so SQS redelivers it (and, after the
//! queue's `maxReceiveCount`, moves it to the dead-letter queue). The event source mapping
//! deletes the others.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use executor_lifecycle::Engine;
use executor_lifecycle::worker::{Disposition, process};

/// Handles every record of a batch (concurrently) and reports the failures.
pub async fn handle_sqs_batch(engine: &Engine, event: SqsEvent) -> SqsBatchResponse {
    let futures = event.records.into_iter().map(|record| async move {
        let id = record.message_id.clone().unwrap_or_default();
        let Some(body) = record.body.as_deref() else {
            tracing::warn!(message_id = %id, "SQS record without a body");
            return Some(id);
        };
        match process(engine, body).await {
            Disposition::Ack => None,
            Disposition::RetryLater(ms) => {
                tracing::info!(message_id = %id, retry_in_ms = ms, "record not ready; reported for redelivery");
                Some(id)
            }
            Disposition::Malformed(reason) => {
                tracing::warn!(message_id = %id, %reason, "malformed record reported as a batch item failure");
                Some(id)
            }
            Disposition::Failed(reason) => {
                tracing::warn!(message_id = %id, %reason, "record failed; reported for redelivery");
                Some(id)
            }
        }
    });
    let failures = futures::future::join_all(futures).await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .flatten()
        .map(|item_identifier| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = item_identifier;
            f
        })
        .collect();
    response
}
