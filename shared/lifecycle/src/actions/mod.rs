//! The actions that advance an execution: submit, poll, finalize. Each reads what it needs,
//! calls the provider through its driver, and commits through [`crate::protocol`].

pub mod finalize;
pub mod poll;
pub mod submit;

use crate::blobs;
use crate::engine::{Engine, EngineError};
use crate::keys;
use crate::model::{Effect, ExecutionRequest, Guard, Message, QueueName, ResultRecord};
use crate::ports::StoreError;
use crate::provider::CallContext;

/// Loads the request blob of an execution; its absence is corruption.
pub(crate) async fn load_request(
    engine: &Engine,
    guard: &Guard,
) -> Result<ExecutionRequest, EngineError> {
    engine
        .request(&guard.id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("request blob of {} missing", guard.id)).into())
}

/// The context handed to the driver.
pub(crate) fn call_context(
    engine: &Engine,
    guard: &Guard,
    request: ExecutionRequest,
) -> CallContext {
    CallContext {
        callback_url: engine.callback_url(&guard.provider, &guard.id),
        job_id: guard.hot.job_id.clone(),
        attempt: guard.hot.attempt.max(1),
        deadline_ms: guard.deadline_ms,
        request,
    }
}

/// An effect sending the message that advances `next` (its own version) after `delay_ms`.
pub(crate) fn send_next(next: &Guard, queue: QueueName, delay_ms: u64) -> Effect {
    Effect::Send {
        queue,
        message: Message {
            execution_id: next.id.clone(),
            version: Some(next.version()),
        },
        delay_ms,
    }
}

/// The terminal result blob: content-addressed key and bytes.
pub(crate) fn result_blob(
    guard: &Guard,
    record: &ResultRecord,
) -> Result<(String, Vec<u8>), EngineError> {
    let hash = blobs::content_hash(record)?;
    Ok((keys::result(&guard.id, &hash), blobs::encode(record)?))
}

/// Effects every transition into a terminal status carries: release the lease, finalize.
pub(crate) fn terminal_effects(next: &Guard) -> Vec<Effect> {
    let mut effects = Vec::new();
    if let Some(lease) = &next.hot.lease {
        effects.push(Effect::ReleaseLease {
            lease: lease.clone(),
        });
    }
    effects.push(send_next(next, QueueName::Finalize, 0));
    effects
}
