//! Running an immediate model's submit inside the create request, and waiting for an outcome.
//!
//! An API answers a create for an immediate model (a chat completion, an image from OpenAI)
//! with the outcome when it can: the submit runs in the request instead of from the submit
//! queue. That is a lifecycle decision, not an HTTP one, and it lives here so every front end
//! (the API, a CLI, a test) gets the same rules:
//!
//! - only a model whose create call is bounded within the caller's limit runs inline (on AWS,
//!   API Gateway cuts a request at 30 s: `api.inline_max_seconds` = 25); a longer one answers
//!   `202` and runs from the submit queue, outcome by poll or webhook;
//! - at most `concurrency` submits run inline at once (a slot each); without a free slot the
//!   execution runs from the queue;
//! - the acceptance's outbox must be applied first: the message handled here proves to the
//!   protocol that the outbox before it was applied. Left pending (a send failed), the
//!   execution is the reconciler's;
//! - the submit runs in its own task, so a client hanging up does not abort the create call
//!   mid-flight; its failure is logged, never returned: the execution was accepted and its
//!   execution is due for the reconciler past the submit timeout, which resumes it.

use crate::config::LifecycleConfig;
use crate::engine::{Accepted, CreateRequest, Engine, EngineError};
use crate::model::{Guard, Message, Shape};
use crate::provider::ModelSpec;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The slots for inline submits and the longest create call allowed to run inline.
#[derive(Debug, Clone)]
pub struct InlineSlots {
    permits: Arc<Semaphore>,
    max_ms: u64,
}

impl InlineSlots {
    /// `concurrency` slots (at least one); `max_seconds` bounds the create call that may run
    /// inline (0: no bound beyond the model's own).
    pub fn new(concurrency: usize, max_seconds: u64) -> InlineSlots {
        InlineSlots {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            max_ms: max_seconds.saturating_mul(1000),
        }
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

/// Whether a model's submit may run inline under a bound of `max_ms` (0: none): immediate,
/// and its create call — cut at the submit timeout plus half the watchdog margin — ends
/// within the bound.
pub fn fits_inline(spec: &ModelSpec, config: &LifecycleConfig, max_ms: u64) -> bool {
    spec.shape == Shape::Immediate
        && (max_ms == 0
            || config.scaled(spec.submit_timeout_ms) + config.watchdog_margin_ms / 2 <= max_ms)
}

impl Engine {
    /// Accepts an execution ([`Engine::create`]) and, for an immediate model that fits the
    /// slots' bound while a slot is free, runs its submit now; then, with `wait`, waits up to
    /// that long for a terminal status. The guard returned is the latest known: once accepted,
    /// nothing that fails afterwards is an error (the execution is accepted and runs on).
    pub async fn accept(
        self: &Arc<Self>,
        tenant: &str,
        req: CreateRequest,
        slots: &InlineSlots,
        wait: Option<Duration>,
    ) -> Result<Accepted, EngineError> {
        let inline = self
            .ports
            .catalog
            .get(&req.model)
            .is_some_and(|d| fits_inline(d.spec(), &self.config, slots.max_ms));
        let permit = if inline {
            slots.permits.clone().try_acquire_owned().ok()
        } else {
            None
        };
        let mut accepted = self.create(tenant, req, permit.is_some()).await?;
        if let Some(permit) = permit
            && !accepted.replayed
            && accepted.guard.outbox.is_empty()
        {
            let engine = self.clone();
            let msg = Message {
                execution_id: accepted.guard.id.clone(),
                version: Some(0),
            };
            let id = accepted.guard.id.clone();
            let guard = accepted.guard.clone();
            let task = tokio::spawn(async move {
                let r = Engine::committed_in(engine.handle_guard(guard, &msg)).await;
                drop(permit);
                r
            });
            let mut committed = None;
            match task.await {
                Ok((Ok(_), last)) => committed = last,
                Ok((Err(e), last)) => {
                    committed = last;
                    tracing::warn!(execution_id = %id, error = %e, "inline submit failed; the reconciler will resume it")
                }
                Err(e) => {
                    tracing::warn!(execution_id = %id, error = %e, "inline submit task failed")
                }
            }
            match committed {
                // What this process committed last is the state to answer with.
                Some(g) => accepted.guard = g,
                // Accepted already: a read failing now answers with what is known.
                None => {
                    if let Ok(g) = self.get(tenant, &accepted.guard.id).await {
                        accepted.guard = g;
                    }
                }
            }
        }
        if let Some(within) = wait {
            match self
                .wait_terminal(tenant, accepted.guard.clone(), within)
                .await
            {
                Ok(g) => accepted.guard = g,
                Err(e) => {
                    tracing::warn!(execution_id = %accepted.guard.id, error = %e, "wait for the outcome failed; answering with the accepted state")
                }
            }
        }
        Ok(accepted)
    }

    /// Waits up to `within` for `guard`'s execution to reach a terminal status, reading it
    /// every 25 ms; returns the last read.
    pub async fn wait_terminal(
        &self,
        tenant: &str,
        mut guard: Guard,
        within: Duration,
    ) -> Result<Guard, EngineError> {
        let until = tokio::time::Instant::now() + within;
        while !guard.status().is_terminal() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(25)).await;
            guard = self.get(tenant, &guard.id).await?;
        }
        Ok(guard)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )]
    use super::*;
    use crate::provider::{AmbiguousPolicy, PollPolicy};

    fn spec(shape: Shape, submit_timeout_ms: u64) -> ModelSpec {
        ModelSpec {
            job_retries: 0,
            id: "openai/gpt-image-1".into(),
            provider: "openai".into(),
            shape,
            description: String::new(),
            input_schema: serde_json::json!({}),
            max_duration_ms: 300_000,
            max_submit_attempts: 2,
            submit_timeout_ms,
            poll: PollPolicy {
                initial_delay_ms: 1_000,
                max_delay_ms: 1_000,
                multiplier: 1.0,
            },
            safety_poll_ms: 0,
            capacity: None,
            ambiguous_submit: AmbiguousPolicy::Fail,
        }
    }

    #[test]
    fn only_an_immediate_model_whose_call_ends_within_the_bound_runs_inline() {
        let config = LifecycleConfig::default(); // watchdog margin 15 s: half is 7.5 s
        assert!(fits_inline(
            &spec(Shape::Immediate, 10_000),
            &config,
            25_000
        ));
        // OpenAI images: 110 s calls cannot answer inside API Gateway's 30 s.
        assert!(!fits_inline(
            &spec(Shape::Immediate, 110_000),
            &config,
            25_000
        ));
        assert!(fits_inline(&spec(Shape::Immediate, 110_000), &config, 0));
        assert!(!fits_inline(&spec(Shape::Polling, 1_000), &config, 25_000));
        // 17.5 s + 7.5 s is exactly the bound.
        assert!(fits_inline(
            &spec(Shape::Immediate, 17_500),
            &config,
            25_000
        ));
        assert!(!fits_inline(
            &spec(Shape::Immediate, 17_501),
            &config,
            25_000
        ));
    }
}
