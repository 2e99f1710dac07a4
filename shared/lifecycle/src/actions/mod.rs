//! The actions that advance an execution: submit, poll, finalize.
//!
//! Each action is two layers. Its **decisions** are pure functions from what is known — the
//! guard, the blobs loaded for it, the provider's answers, the clock's reading (a [`Ctx`]) —
//! to the [`Step`] to commit; they touch no port, so they are unit-tested beside each action.
//! Its **runner** (`run`) does the I/O in order: it reads, takes capacity, calls the provider
//! through the model's driver, asks the decisions what the answers mean, and hands the step to
//! the commit protocol ([`crate::protocol`]), which never calls back into the actions.
//! [`Engine::handle`] is the one entry point: the protocol's guard read, roll-forward and
//! staleness checks, then the dispatch on the guard's status.

pub mod finalize;
pub mod poll;
pub mod submit;

use crate::blobs;
use crate::config::LifecycleConfig;
use crate::crash::CrashPoint;
use crate::engine::{Engine, EngineError};
use crate::keys;
use crate::model::{Effect, ExecutionRequest, Guard, Message, QueueName, ResultRecord};
use crate::ports::StoreError;
use crate::protocol::{Committed, Handled, Step};
use crate::provider::CallContext;
use crate::status::Status;

/// What a decision sees besides the guard and the answers: the clock's reading, the
/// lifecycle's settings, and one uniform draw in `[0, 1]` for jitter (so a decision is a
/// function of its inputs; the runner draws it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// Now (ms since the Unix epoch).
    pub now: i64,
    /// The lifecycle's settings.
    pub config: &'a LifecycleConfig,
    /// A uniform draw in `[0, 1]`.
    pub draw: f64,
}

impl<'a> Ctx<'a> {
    /// The engine's clock and settings now, with a fresh draw.
    pub fn of(engine: &'a Engine) -> Ctx<'a> {
        use rand::Rng;
        Ctx {
            now: engine.now(),
            config: &engine.config,
            draw: rand::rng().random_range(0.0..=1.0),
        }
    }

    /// Exponential backoff with full jitter from this context's draw (see
    /// [`LifecycleConfig::backoff_ms`]): `draw * min(max, base * 2^attempt)`, scaled, never
    /// below the scaled `floor_ms`.
    pub fn backoff_ms(&self, base_ms: u64, max_ms: u64, attempt: u32, floor_ms: u64) -> u64 {
        let cap = base_ms.saturating_mul(1u64 << attempt.min(20)).min(max_ms);
        let cap = self.config.scaled(cap);
        let jittered = (cap as f64 * self.draw.clamp(0.0, 1.0)).round() as u64;
        jittered.max(self.config.scaled(floor_ms))
    }

    /// A jitter in `[0, n)`.
    pub fn below(&self, n: u64) -> u64 {
        ((n as f64) * self.draw.clamp(0.0, 1.0)) as u64 % n.max(1)
    }
}

impl Engine {
    /// Handles one queue message through the commit protocol, then dispatches to the action
    /// the guard's status calls for. Every log line inside carries the execution id, model,
    /// provider and version (a tracing span).
    pub async fn handle(&self, msg: &Message) -> Result<Handled, EngineError> {
        use tracing::Instrument;
        let span = handle_span(msg);
        self.handle_in_span(msg, &span)
            .instrument(span.clone())
            .await
    }

    async fn handle_in_span(
        &self,
        msg: &Message,
        span: &tracing::Span,
    ) -> Result<Handled, EngineError> {
        let id = msg.execution_id.as_str();
        let Some(guard) = self.ports.guards.get(id).await? else {
            tracing::warn!(execution_id = id, "message for unknown execution dropped");
            return Ok(Handled::Stale);
        };
        self.handle_read(guard, msg, span).await
    }

    /// Handles a message about `guard` as just read, or as just committed by this process
    /// (an inline submit right after its acceptance: no read needed, the commit is
    /// conditional on the version all the same).
    pub(crate) async fn handle_guard(
        &self,
        guard: Guard,
        msg: &Message,
    ) -> Result<Handled, EngineError> {
        use tracing::Instrument;
        let span = handle_span(msg);
        self.handle_read(guard, msg, &span)
            .instrument(span.clone())
            .await
    }

    async fn handle_read(
        &self,
        guard: Guard,
        msg: &Message,
        span: &tracing::Span,
    ) -> Result<Handled, EngineError> {
        let id = msg.execution_id.as_str();
        span.record("model", guard.model.as_str());
        span.record("provider", guard.provider.as_str());
        span.record("version", guard.version());
        let Some(guard) = self.settle(guard, msg.version).await? else {
            return Ok(Handled::Stale);
        };
        if let Some(v) = msg.version
            && v > guard.version()
        {
            // Written but not yet visible to this read: try again shortly.
            return Ok(Handled::RetryLater(1_000));
        }
        if guard.status().is_final() {
            return Ok(Handled::Stale);
        }
        self.check_crash(CrashPoint::AfterGuardRead, id)?;
        let handled = self.dispatch(guard, msg.version.is_none()).await?;
        if handled == Handled::Done {
            self.check_crash(CrashPoint::BeforeAck, id)?;
        }
        Ok(handled)
    }

    /// The action a guard's status calls for. `nudge`: the message carries no version (a
    /// callback's nudge or the reconciler's), so it may only advance what waits on the
    /// provider.
    async fn dispatch(&self, guard: Guard, nudge: bool) -> Result<Handled, EngineError> {
        match guard.status() {
            Status::Queued if nudge && !guard.cancel_requested => Ok(Handled::Stale),
            Status::Queued => submit::run(self, guard).await,
            Status::Submitting if nudge => {
                // The create call may be in flight: look again once it has committed.
                if self.now() < guard.deadline_ms {
                    self.nudge(&guard, self.config.nudge_retry_ms).await?;
                }
                Ok(Handled::Done)
            }
            Status::Submitting => submit::resolve_ambiguous(self, guard).await,
            Status::Submitted | Status::Running => poll::run(self, guard).await,
            _ if nudge => Ok(Handled::Stale),
            _ => finalize::run(self, guard).await,
        }
    }
}

/// The span every log line of a handled message carries (the execution's id, model, provider
/// and version, filled in once the guard is read).
fn handle_span(msg: &Message) -> tracing::Span {
    tracing::info_span!(
        "handle",
        execution_id = %msg.execution_id,
        model = tracing::field::Empty,
        provider = tracing::field::Empty,
        version = tracing::field::Empty,
    )
}

/// Loads the request blob of an execution; its absence is corruption.
pub(crate) async fn load_request(
    engine: &Engine,
    guard: &Guard,
) -> Result<ExecutionRequest, EngineError> {
    // The request as the chain's current step runs it (its model and input).
    engine
        .request_of(guard)
        .await?
        .map(|r| r.at_step(guard.hot.step))
        .ok_or_else(|| StoreError::Corrupt(format!("request blob of {} missing", guard.id)).into())
}

/// The context handed to the driver.
pub(crate) fn call_context(
    engine: &Engine,
    guard: &Guard,
    request: ExecutionRequest,
) -> CallContext {
    CallContext {
        callback_url: engine.callback_url_at(&guard.provider, &guard.id, guard.hot.step),
        job_id: guard.hot.job_id.clone(),
        attempt: guard.hot.attempt.max(1),
        deadline_ms: guard.deadline_ms,
        final_look: false,
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

/// Records a step's terminal result: kept in the guard item when small
/// ([`crate::model::KEPT_IN_ITEM_MAX_BYTES`] packed), else written as its blob before the
/// commit; either way at hand for a finalize committed with the step.
pub(crate) fn keep_result(step: &mut Step, record: ResultRecord) -> Result<(), EngineError> {
    let packed = crate::model::packed::pack(&record)?;
    if packed.len() <= crate::model::KEPT_IN_ITEM_MAX_BYTES {
        step.next.hot.result = Some(Box::new(record.clone()));
        step.next.hot.result_key = None;
    } else {
        let (key, bytes) = result_blob(&step.next, &record)?;
        step.next.hot.result_key = Some(key.clone());
        step.next.hot.result = None;
        step.blobs.push((key, bytes));
    }
    step.result = Some(record);
    Ok(())
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

/// Commits a decided step; the message is done whether this commit won or lost the race
/// (a loser's work is someone else's now).
pub(crate) async fn commit(
    engine: &Engine,
    prev: &Guard,
    step: Step,
) -> Result<Handled, EngineError> {
    Ok(match engine.commit_step(prev, step).await? {
        Committed::Won(_) => Handled::Done,
        Committed::Lost => Handled::Stale,
    })
}

/// What the unit tests of the decisions share: a guard at any status, a context.
#[cfg(test)]
pub(crate) mod testing {
    #![allow(clippy::expect_used)]
    use super::*;
    use crate::model::Shape;
    use crate::transitions::Event;

    pub fn config() -> LifecycleConfig {
        LifecycleConfig::default()
    }

    pub fn ctx(config: &LifecycleConfig, now: i64) -> Ctx<'_> {
        Ctx {
            now,
            config,
            draw: 0.5,
        }
    }

    /// A new execution of `model` at `provider`, accepted at 1,000 ms with a 60 s deadline.
    pub fn queued(provider: &str, shape: Shape) -> Guard {
        let req = ExecutionRequest {
            retries: None,
            fallbacks: Default::default(),
            id: "ex_test".into(),
            tenant: "acme".into(),
            model: format!("{provider}/model"),
            input: serde_json::json!({"prompt": "a lighthouse"}),
            webhook_url: None,
            idempotency_key: None,
            created_at_ms: 1_000,
            max_duration_ms: 60_000,
        };
        Guard::accepted(&req, provider, shape)
    }

    /// The guard after the given events, one millisecond apart.
    pub fn after(guard: &Guard, events: &[Event]) -> Guard {
        let mut g = guard.clone();
        for (i, e) in events.iter().enumerate() {
            g = g.advance(*e, 1_000 + i as i64).expect("legal transition");
        }
        g
    }
}
