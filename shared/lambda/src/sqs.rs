//! SQS batches: each record is one message of the commit protocol; a record that fails (or
//! is malformed) is reported as a batch item failure so SQS redelivers it (and, after the
//! queue's `maxReceiveCount`, moves it to the dead-letter queue). The event source mapping
//! deletes the others.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use executor_lifecycle::worker::{Disposition, process};
use executor_lifecycle::{Engine, QueueName};
use futures::FutureExt as _;

/// Handles every record of a batch (concurrently) and reports the failures.
///
/// A record the lifecycle asks to see again later (`RetryLater`) has its visibility changed to
/// that delay before it is reported, so it comes back then, not after the queue's whole
/// visibility timeout (six times the function's timeout). `queue_of` names the queue of a
/// record's event source ARN. A record whose handling panics fails alone: the panic is caught
/// at the record (the release profile unwinds), the other records of the batch stand.
pub async fn handle_sqs_batch(
    engine: &Engine,
    event: SqsEvent,
    queue_of: &(dyn Fn(&str) -> Option<QueueName> + Sync),
) -> SqsBatchResponse {
    let futures = event.records.into_iter().map(|record| async move {
        let id = record.message_id.clone().unwrap_or_default();
        let Some(body) = record.body.as_deref() else {
            tracing::warn!(message_id = %id, "SQS record without a body");
            return Some(id);
        };
        let handled = std::panic::AssertUnwindSafe(process(engine, body))
            .catch_unwind()
            .await;
        let disposition = match handled {
            Ok(d) => d,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                tracing::error!(message_id = %id, panic = %what, "record handling panicked; reported alone for redelivery");
                return Some(id);
            }
        };
        match disposition {
            Disposition::Ack => None,
            Disposition::RetryLater(ms) => {
                let queue = record.event_source_arn.as_deref().and_then(queue_of);
                match (queue, record.receipt_handle.as_deref()) {
                    (Some(q), Some(receipt)) => {
                        if let Err(e) = engine.ports().queue.retry_later(q, receipt, ms).await {
                            tracing::warn!(message_id = %id, error = %e, "could not shorten the record's visibility; it returns after the visibility timeout");
                        }
                    }
                    _ => tracing::warn!(message_id = %id, "record of an unknown queue: it returns after the visibility timeout"),
                }
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
