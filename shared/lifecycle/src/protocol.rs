//! The commit protocol (DESIGN.md): guard read, roll-forward of a pending outbox, staleness
//! check, action, write-once blobs, one conditional commit, outbox applied idempotently,
//! acknowledgement. Every message of every queue is handled by [`Engine::handle`].

use crate::actions::{finalize, poll, submit};
use crate::blobs;
use crate::crash::CrashPoint;
use crate::engine::{Engine, EngineError};
use crate::keys;
use crate::model::{CallRecord, Effect, Guard, Message, TransitionRecord};
use crate::ports::{CommitError, StoreError};
use crate::status::Status;
use crate::taxonomy::Failure;
use crate::transitions::Event;
use serde_json::Value;

/// What to do with a message after handling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Work done: acknowledge.
    Done,
    /// The message was stale or a duplicate: acknowledge.
    Stale,
    /// Not handled yet: make it visible again after this delay.
    RetryLater(u64),
}

/// One transition an action wants to commit.
pub(crate) struct Step {
    /// The guard after the transition (made by `Guard::advance`).
    pub next: Guard,
    /// The event that caused it.
    pub event: Event,
    /// The action committing it.
    pub action: &'static str,
    /// Blobs to write before the commit (write-once).
    pub blobs: Vec<(String, Vec<u8>)>,
    /// Effects to apply after the commit.
    pub effects: Vec<Effect>,
    /// Provider calls made.
    pub calls: Vec<CallRecord>,
    /// The failure involved.
    pub failure: Option<Failure>,
    /// Extra facts for the record.
    pub detail: Value,
}

impl Step {
    /// A step to `next` on `event`.
    pub fn new(next: Guard, event: Event, action: &'static str) -> Step {
        Step {
            next,
            event,
            action,
            blobs: vec![],
            effects: vec![],
            calls: vec![],
            failure: None,
            detail: Value::Null,
        }
    }
}

/// Result of committing a step.
pub(crate) enum Committed {
    /// Ours: the guard as committed, outbox applied.
    Won(Box<Guard>),
    /// Someone else committed this version first.
    Lost,
}

impl Engine {
    /// Handles one queue message through the commit protocol. Every log line inside carries
    /// the execution id, model, provider and version (a tracing span).
    pub async fn handle(&self, msg: &Message) -> Result<Handled, EngineError> {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "handle",
            execution_id = %msg.execution_id,
            model = tracing::field::Empty,
            provider = tracing::field::Empty,
            version = tracing::field::Empty,
        );
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
        span.record("model", guard.model.as_str());
        span.record("provider", guard.provider.as_str());
        span.record("version", guard.version());
        let mut guard = guard;
        if guard.outbox_ends_in_own_message() {
            match msg.version {
                // This message is the outbox's last effect: the outbox was applied.
                Some(v) if v == guard.version() => guard.outbox.clear(),
                // An older version's message: stale. The outbox settles itself when its own
                // message arrives, or the reconciler re-drives it once overdue.
                Some(v) if v < guard.version() => return Ok(Handled::Stale),
                _ => {}
            }
        }
        let guard = self.roll_forward(guard).await?;
        if let Some(v) = msg.version {
            if v < guard.version() {
                return Ok(Handled::Stale);
            }
            if v > guard.version() {
                // Written but not yet visible to this read: try again shortly.
                return Ok(Handled::RetryLater(1_000));
            }
        }
        if guard.status().is_final() {
            return Ok(Handled::Stale);
        }
        self.check_crash(CrashPoint::AfterGuardRead, id)?;
        let nudge = msg.version.is_none();
        let handled = match guard.status() {
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
        }?;
        if handled == Handled::Done {
            self.check_crash(CrashPoint::BeforeAck, id)?;
        }
        Ok(handled)
    }

    /// Commits a step: writes its blobs, commits version v+1 with the outbox (the transition
    /// record first, then the step's effects), applies the outbox.
    pub(crate) async fn commit_step(
        &self,
        prev: &Guard,
        step: Step,
    ) -> Result<Committed, EngineError> {
        let id = prev.id.clone();
        self.check_crash(CrashPoint::AfterAction, &id)?;
        for (key, bytes) in step.blobs {
            self.ports.blobs.put_once(&key, bytes).await?;
        }
        self.check_crash(CrashPoint::AfterBlobs, &id)?;
        let now = self.now();
        let mut next = step.next;
        let record = TransitionRecord {
            version: next.version(),
            from: Some(prev.status()),
            to: next.status(),
            event: step.event,
            at_ms: now,
            action: step.action.to_string(),
            calls: step.calls,
            failure: step.failure,
            detail: step.detail,
        };
        let observed = self.observer.as_ref().map(|_| record.clone());
        next.outbox = Vec::with_capacity(step.effects.len() + 1);
        next.outbox.push(Effect::Record {
            record: Box::new(record),
        });
        next.next_due_ms = now;
        // This execution's own next message goes last, so its arrival proves the rest applied.
        let (own, others): (Vec<Effect>, Vec<Effect>) = step.effects.into_iter().partition(|e| {
            matches!(e, Effect::Send { message, .. }
                if message.execution_id == id && message.version == Some(next.version()))
        });
        for effect in others.into_iter().chain(own) {
            if let Effect::Send {
                message, delay_ms, ..
            } = &effect
                && message.execution_id == id
                && message.version == Some(next.version())
            {
                next.next_due_ms = now + *delay_ms as i64;
            }
            next.outbox.push(effect);
        }
        match self.ports.guards.commit(prev.version(), &next).await {
            Ok(()) => {}
            Err(CommitError::Conflict) => {
                tracing::info!(execution_id = %id, version = prev.version(), "lost commit race");
                return Ok(Committed::Lost);
            }
            Err(CommitError::Store(e)) => return Err(e.into()),
        }
        tracing::info!(
            execution_id = %id,
            model = %next.model,
            provider = %next.provider,
            version = next.version(),
            status = %next.status(),
            error_class = next.error_class().map(|c| c.as_str()),
            "transition committed"
        );
        if let (Some(observer), Some(record)) = (&self.observer, &observed) {
            observer.committed(&next, record);
        }
        self.check_crash(CrashPoint::AfterCommit, &id)?;
        let next = self.roll_forward(next).await?;
        Ok(Committed::Won(Box::new(next)))
    }

    /// Applies a guard's pending outbox (idempotently) and clears it. Returns the guard with
    /// an empty outbox.
    pub async fn roll_forward(&self, mut guard: Guard) -> Result<Guard, EngineError> {
        if guard.outbox.is_empty() {
            return Ok(guard);
        }
        for (i, effect) in guard.outbox.iter().enumerate() {
            self.apply_effect(&guard, effect).await?;
            if i == 0 {
                self.check_crash(CrashPoint::AfterFirstEffect, &guard.id)?;
            }
        }
        self.check_crash(CrashPoint::BeforeOutboxClear, &guard.id)?;
        if guard.outbox_ends_in_own_message() {
            // Self-settling: the message just sent proves it; the next commit replaces it.
            guard.outbox.clear();
            return Ok(guard);
        }
        guard.outbox.clear();
        self.ports.guards.clear_outbox_of(&guard).await?;
        Ok(guard)
    }

    async fn apply_effect(&self, guard: &Guard, effect: &Effect) -> Result<(), EngineError> {
        match effect {
            Effect::Send {
                queue,
                message,
                delay_ms,
            } => {
                let body = serde_json::to_string(message)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                self.ports.queue.send(*queue, &body, *delay_ms).await?;
            }
            Effect::Publish { event } => self.ports.events.publish(event).await?,
            Effect::ReleaseLease { lease } => {
                self.ports.limiter.release(&lease.scope, &lease.id).await?
            }
            Effect::Record { record } => {
                blobs::put_json(
                    self.ports.blobs.as_ref(),
                    &keys::transition(&guard.id, record.version),
                    record,
                )
                .await?;
            }
        }
        Ok(())
    }
}
