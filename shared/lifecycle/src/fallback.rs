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

/// The classes a failed job is retried on with the same model (`retries`): the job was
/// created and failed for a reason on the provider's side that another run may not meet
/// (fal's `runner_disconnected`, a 5xx of the job).
pub const RETRY_CLASSES: [ErrorClass; 2] = [
    ErrorClass::ProviderTransient,
    ErrorClass::ProviderUnavailable,
];

/// Most retries of one model.
pub const MAX_RETRIES: u32 = 3;

/// The provider codes of a submit that skipped its model without calling it (health-aware
/// routing): the breaker of its host open, its capacity taken.
pub const SKIP_CODES: [&str; 2] = ["circuit_open", "capacity_exhausted"];

/// The chain step an attempt that failed moves to: `(index in the chain, retry)`, or `None`
/// when the chain ends here. A step that repeats the failed model is a retry, taken only
/// when the job was created and failed with a class of [`RETRY_CLASSES`] (and not for a
/// skipped model); otherwise the retries of the model are passed over to the next model,
/// taken when the class is one of [`FALLBACK_CLASSES`].
pub(crate) fn next_step(
    chain: &[String],
    from: usize,
    model: &str,
    class: ErrorClass,
    job_created: bool,
    skipped: bool,
) -> Option<(usize, bool)> {
    let retry = RETRY_CLASSES.contains(&class) && job_created && !skipped;
    for (i, m) in chain.iter().enumerate().skip(from) {
        if m == model {
            if retry {
                return Some((i, true));
            }
            continue;
        }
        return FALLBACK_CLASSES.contains(&class).then_some((i, false));
    }
    None
}

impl Engine {
    /// `step` as it is, or, when it ends a chained execution's attempt failed with a class
    /// the chain falls back on, the step that moves it to the next model (or runs the same
    /// model again, for a retry).
    pub(crate) fn chained(&self, prev: &crate::model::Guard, step: Step) -> Step {
        let failed = &step.next;
        let Some(class) = failed.hot.error.as_ref().map(|f| f.class) else {
            return step;
        };
        if failed.status() != Status::Failed
            || prev.cancel_requested
            || self.now() >= prev.deadline_ms
        {
            return step;
        }
        let skipped = failed
            .hot
            .error
            .as_ref()
            .and_then(|f| f.provider_code.as_deref())
            .filter(|c| SKIP_CODES.contains(c))
            .map(str::to_string);
        let Some((index, retry)) = next_step(
            &prev.hot.chain,
            prev.hot.step as usize,
            &prev.model,
            class,
            failed.hot.job_id.is_some(),
            skipped.is_some(),
        ) else {
            return step;
        };
        let next_model = &prev.hot.chain[index];
        let Ok(driver) = self.driver(next_model) else {
            return step;
        };
        let spec = driver.spec();
        let now = self.now();
        let retries_before = prev
            .hot
            .attempts
            .iter()
            .rev()
            .take_while(|a| a.model == prev.model)
            .count() as u32;
        let delay = if retry {
            let ctx = crate::actions::Ctx::of(self);
            let base = self.config.submit_retry_base_ms;
            let floor = failed
                .hot
                .error
                .as_ref()
                .and_then(|f| f.retry_after_ms)
                .unwrap_or(base);
            ctx.backoff_ms(base, self.config.submit_retry_max_ms, retries_before, floor)
        } else {
            0
        };
        if now + delay as i64 >= prev.deadline_ms {
            return step;
        }
        let event = if retry {
            Event::Retried
        } else {
            Event::FellBack
        };
        let Ok(mut next) = prev.advance(event, now) else {
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
        next.hot.step = index as u32 + 1;
        next.model = spec.id.clone();
        next.provider = spec.provider.clone();
        next.shape = spec.shape;
        let h = &mut next.hot;
        h.job_id = None;
        h.attempt = 0;
        h.attempt_id = None;
        h.lease = None;
        h.poll_count = 0;
        h.final_looks = 0;
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
        effects.push(crate::actions::send_next(&next, QueueName::Submit, delay));
        let mut detail = if retry {
            json!({
                "retried": prev.model,
                "retry": retries_before + 1,
                "delay_ms": delay,
            })
        } else {
            json!({"fell_back_from": prev.model, "to": spec.id})
        };
        detail["step"] = json!(next.hot.step);
        detail["error_class"] = json!(class.as_str());
        detail["failed_event"] = json!(step.event.as_str());
        detail["job_id"] = json!(failed.hot.job_id);
        if let Some(reason) = skipped {
            // Health-aware routing: the model was skipped, not called.
            detail["skipped"] = json!(reason);
        }
        let passed = index.saturating_sub(prev.hot.step as usize);
        if passed > 0 {
            detail["retries_passed_over"] = json!(passed);
        }
        Step {
            next,
            event,
            action: step.action,
            blobs: step.blobs,
            effects,
            calls: step.calls,
            failure: step.failure,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(models: &[&str]) -> Vec<String> {
        models.iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn a_transient_job_failure_retries_the_model_then_falls_back() {
        // a (retries 2) -> b (retries 1): the chain after a.
        let c = chain(&["a", "a", "b", "b"]);
        let t = ErrorClass::ProviderTransient;
        assert_eq!(next_step(&c, 0, "a", t, true, false), Some((0, true)));
        assert_eq!(next_step(&c, 1, "a", t, true, false), Some((1, true)));
        // The retries used, the next model.
        assert_eq!(next_step(&c, 2, "a", t, true, false), Some((2, false)));
        assert_eq!(next_step(&c, 3, "b", t, true, false), Some((3, true)));
        assert_eq!(next_step(&c, 4, "b", t, true, false), None);
    }

    #[test]
    fn a_refused_create_or_a_skip_or_another_class_passes_over_the_retries() {
        let c = chain(&["a", "a", "b"]);
        let t = ErrorClass::ProviderTransient;
        // No job was created (the submit's own attempts already retried the create).
        assert_eq!(next_step(&c, 0, "a", t, false, false), Some((2, false)));
        // The model was skipped for its health: its retries would meet the same.
        let u = ErrorClass::ProviderUnavailable;
        assert_eq!(next_step(&c, 0, "a", u, false, true), Some((2, false)));
        // rate_limited and timeout fall back but do not retry the model.
        for class in [
            ErrorClass::RateLimited,
            ErrorClass::Timeout,
            ErrorClass::PartialResult,
        ] {
            assert_eq!(next_step(&c, 0, "a", class, true, false), Some((2, false)));
        }
        // Never on the classes the chain does not fall back on.
        for class in [
            ErrorClass::ValidationError,
            ErrorClass::ContentPolicy,
            ErrorClass::Canceled,
            ErrorClass::SubmitAmbiguous,
        ] {
            assert_eq!(next_step(&c, 0, "a", class, true, false), None);
        }
        // Retries only: a class that does not retry ends the chain.
        let only = chain(&["a", "a"]);
        assert_eq!(
            next_step(&only, 0, "a", ErrorClass::RateLimited, true, false),
            None
        );
    }
}
