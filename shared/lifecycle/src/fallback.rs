//! Fallback chains: an execution that names fallback models moves to the next one when an
//! attempt fails with a class the chain falls back on, instead of ending. One execution id,
//! one lifecycle: the failed attempt is recorded ([`AttemptRecord`]), its lease released, and
//! the execution goes back to `queued` for the next model's submit (the `fell_back`
//! transition). The decision is made where every transition is committed
//! ([`Engine::commit_step`]), so it applies to whatever action ended the attempt: a refused
//! create, a failed job found by a poll or a callback, an empty output.
//!
//! Never on `validation_error`, `content_policy`, `canceled` or `submit_ambiguous` (a job may
//! exist: a second paid job is not a fallback), nor once a cancel was asked for or the
//! deadline passed.

use crate::engine::Engine;
use crate::model::{AttemptRecord, Effect, QueueName};
use crate::protocol::Step;
use crate::status::Status;
use crate::taxonomy::ErrorClass;
use crate::transitions::Event;
use serde_json::json;

/// The classes a chain falls back on.
pub const FALLBACK_CLASSES: [ErrorClass; 5] = [
    ErrorClass::ProviderUnavailable,
    ErrorClass::RateLimited,
    ErrorClass::Timeout,
    ErrorClass::ProviderTransient,
    ErrorClass::PartialResult,
];

/// Most fallback models a chain may name.
pub const MAX_FALLBACKS: usize = 4;

impl Engine {
    /// `step` as it is, or, when it ends a chained execution's attempt failed with a class
    /// the chain falls back on, the step that moves it to the next model.
    pub(crate) fn chained(&self, prev: &crate::model::Guard, step: Step) -> Step {
        let failed = &step.next;
        let next_model = prev.hot.chain.get(prev.hot.step as usize);
        let class = failed.hot.error.as_ref().map(|f| f.class);
        let Some(next_model) = next_model else {
            return step;
        };
        if failed.status() != Status::Failed
            || !class.is_some_and(|c| FALLBACK_CLASSES.contains(&c))
            || prev.cancel_requested
            || self.now() >= prev.deadline_ms
        {
            return step;
        }
        let Ok(driver) = self.driver(next_model) else {
            return step;
        };
        let spec = driver.spec();
        let now = self.now();
        let Ok(mut next) = prev.advance(Event::FellBack, now) else {
            return step;
        };
        let started = prev
            .hot
            .attempts
            .last()
            .map_or(prev.created_at_ms, |a| a.ended_at_ms);
        next.hot.attempts.push(AttemptRecord {
            step: prev.hot.step,
            model: prev.model.clone(),
            provider: prev.provider.clone(),
            job_id: failed.hot.job_id.clone(),
            status: Status::Failed,
            error: failed.hot.error.clone(),
            started_at_ms: started,
            ended_at_ms: now,
            result_key: failed.hot.result_key.clone(),
            cost: None,
        });
        next.hot.step = prev.hot.step + 1;
        next.model = spec.id.clone();
        next.provider = spec.provider.clone();
        next.shape = spec.shape;
        let h = &mut next.hot;
        h.job_id = None;
        h.attempt = 0;
        h.attempt_id = None;
        h.lease = None;
        h.poll_count = 0;
        h.throttled = 0;
        h.result_key = None;
        h.error = None;
        h.waiting = None;
        h.provider_status = None;
        h.progress = None;
        h.terminal_at_ms = None;
        h.outcome = None;
        let mut effects = Vec::new();
        if let Some(lease) = &prev.hot.lease {
            effects.push(Effect::ReleaseLease {
                lease: lease.clone(),
            });
        }
        effects.push(crate::actions::send_next(&next, QueueName::Submit, 0));
        let detail = json!({
            "fell_back_from": prev.model,
            "to": spec.id,
            "step": next.hot.step,
            "error_class": class.map(|c| c.as_str()),
            "failed_event": step.event.as_str(),
            "job_id": failed.hot.job_id,
        });
        Step {
            next,
            event: Event::FellBack,
            action: step.action,
            blobs: step.blobs,
            effects,
            calls: step.calls,
            failure: step.failure,
            detail,
        }
    }
}
