//! Queue consumers: receive batches, hand each message to the engine with bounded
//! concurrency, acknowledge or release per the protocol's answer. The same per-message
//! function serves the Lambda handlers (one record of an SQS batch).

use crate::engine::{Engine, EngineError};
use crate::model::{Message, QueueName};
use crate::ports::Delivery;
use crate::protocol::Handled;
use std::sync::Arc;
use tokio::sync::{Semaphore, watch};

/// Settings of one queue's consumers.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The queue.
    pub queue: QueueName,
    /// Messages handled at once.
    pub concurrency: usize,
    /// Messages received per call.
    pub batch_size: usize,
    /// How long an idle worker waits for new messages before looking again (ms).
    pub idle_wait_ms: u64,
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Handled (or stale): delete it.
    Ack,
    /// Make it visible again after a delay.
    RetryLater(u64),
    /// Unparseable: dead-letter it.
    Malformed(String),
    /// Failed (backend error or injected crash): leave it; the visibility timeout redelivers it.
    Failed(String),
}

/// Parses and handles one message body.
pub async fn process(engine: &Engine, body: &str) -> Disposition {
    let msg: Message = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => return Disposition::Malformed(format!("not an execution message: {e}")),
    };
    match engine.handle(&msg).await {
        Ok(Handled::Done | Handled::Stale) => Disposition::Ack,
        Ok(Handled::RetryLater(ms)) => Disposition::RetryLater(ms),
        Err(e @ EngineError::Crash(_)) => Disposition::Failed(e.to_string()),
        Err(e) => {
            tracing::warn!(execution_id = %msg.execution_id, error = %e, "message handling failed; will be redelivered");
            Disposition::Failed(e.to_string())
        }
    }
}

/// Handles one received delivery and settles it on the queue.
pub async fn settle(engine: &Engine, queue: QueueName, delivery: &Delivery) {
    let q = &engine.ports().queue;
    let result = match process(engine, &delivery.body).await {
        Disposition::Ack => q.ack(queue, &delivery.receipt).await,
        Disposition::RetryLater(ms) => q.retry_later(queue, &delivery.receipt, ms).await,
        Disposition::Malformed(reason) => {
            tracing::warn!(queue = queue.as_str(), %reason, "malformed message dead-lettered");
            q.dead_letter(queue, &delivery.receipt, &delivery.body, &reason)
                .await
        }
        Disposition::Failed(_) => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(queue = queue.as_str(), error = %e, "could not settle message");
    }
}

/// Consumes a queue until `shutdown` turns true.
pub async fn run(engine: Arc<Engine>, config: WorkerConfig, mut shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let visibility = engine.config().visibility_timeout_ms;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let free = permits.available_permits().min(config.batch_size.max(1));
        if free == 0 {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let deliveries = match engine
            .ports()
            .queue
            .receive(config.queue, free, visibility)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(queue = config.queue.as_str(), error = %e, "receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        if deliveries.is_empty() {
            tokio::select! {
                _ = engine.ports().queue.wait(config.queue, config.idle_wait_ms) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        for delivery in deliveries {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let engine = engine.clone();
            let queue = config.queue;
            tokio::spawn(async move {
                settle(&engine, queue, &delivery).await;
                drop(permit);
            });
        }
    }
    // Drain: wait for in-flight handlers.
    let _ = permits.acquire_many(config.concurrency.max(1) as u32).await;
}
