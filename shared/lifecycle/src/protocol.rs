//! The commit protocol (DESIGN.md): guard read, roll-forward of a pending outbox, staleness
//! check, action, write-once blobs, one conditional commit, outbox applied idempotently,
//! acknowledgement. Every message of every queue is handled by [`Engine::handle`] (in
//! [`crate::actions`]), which settles the guard here, asks an action for a [`Step`] and
//! commits it here. This module knows no action.

use crate::blobs;
use crate::crash::CrashPoint;
use crate::engine::{Engine, EngineError};
use crate::keys;
use crate::model::{CallRecord, Effect, Guard, TransitionRecord};
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
    /// The protocol's first steps for a message of `version` (none: a nudge) about `guard`,
    /// as read: a pending outbox is rolled forward (or known applied, when this message is
    /// its last effect), and a message older than the guard is stale (`None`). The dispatch
    /// to an action is the actions' ([`Engine::handle`]).
    pub(crate) async fn settle(
        &self,
        mut guard: Guard,
        version: Option<u64>,
    ) -> Result<Option<Guard>, EngineError> {
        if guard.outbox_ends_in_own_message() {
            match version {
                // This message is the outbox's last effect: the outbox was applied.
                Some(v) if v == guard.version() => guard.outbox.clear(),
                // An older version's message: stale. The outbox settles itself when its own
                // message arrives, or the reconciler re-drives it once overdue.
                Some(v) if v < guard.version() => return Ok(None),
                // A nudge (a callback's) about a job being polled: its step commits the next
                // version, whose own message supersedes this one's. Apply the rest of the
                // outbox and leave that message unsent (the commit that follows sends the
                // next; should the step fail before committing, the nudge is retried, and the
                // reconciler re-drives the outbox once overdue).
                None if matches!(guard.status(), Status::Submitted | Status::Running) => {
                    guard.outbox.pop();
                    for effect in &guard.outbox {
                        self.apply_effect(&guard, effect).await?;
                    }
                    guard.outbox.clear();
                    return Ok(Some(guard));
                }
                _ => {}
            }
        }
        let guard = self.roll_forward(guard).await?;
        if let Some(v) = version
            && v < guard.version()
        {
            return Ok(None);
        }
        Ok(Some(guard))
    }

    /// Commits a step: writes its blobs, commits version v+1 with the outbox (the transition
    /// record first, then the step's effects), applies the outbox.
    pub(crate) async fn commit_step(
        &self,
        prev: &Guard,
        step: Step,
    ) -> Result<Committed, EngineError> {
        let id = prev.id.clone();
        // A chained execution's failed attempt moves to the chain's next model instead.
        let step = self.chained(prev, step);
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
        // The record is committed with its version, in the guard's history; the history is
        // written out as one blob when it grows past its bounds or the execution is final.
        next.history.push(record);
        if next.status().is_final() || history_full(&next.history) {
            next.outbox.push(Effect::Records {
                records: std::mem::take(&mut next.history),
            });
        }
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
            Effect::Records { records } => {
                if let (Some(first), Some(last)) = (records.first(), records.last()) {
                    blobs::put_json(
                        self.ports.blobs.as_ref(),
                        &keys::transition_batch(&guard.id, first.version, last.version),
                        records,
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// Whether a history is past the bounds the guard item keeps ([`crate::model::HISTORY_MAX_RECORDS`],
/// [`crate::model::HISTORY_MAX_BYTES`]).
pub(crate) fn history_full(history: &[TransitionRecord]) -> bool {
    history.len() >= crate::model::HISTORY_MAX_RECORDS
        || serde_json::to_vec(history).map_or(true, |b| b.len() >= crate::model::HISTORY_MAX_BYTES)
}
