//! The commit protocol (DESIGN.md): guard read, roll-forward of a pending outbox, staleness
//! check, action, write-once blobs, one conditional commit, outbox applied idempotently,
//! acknowledgement. Every message of every queue is handled by [`Engine::handle`] (in
//! [`crate::actions`]), which settles the guard here, asks an action for a [`Step`] and
//! commits it here. This module knows no action.

use crate::blobs;
use crate::crash::CrashPoint;
use crate::engine::{Engine, EngineError};
use crate::keys;
use crate::model::{CallRecord, Effect, Guard, QueueName, ResultRecord, TransitionRecord};
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
    /// The terminal result this step records (kept in the item or written as a blob): what
    /// finalize reads when it commits with this step ([`Engine::finalize_now`]).
    pub result: Option<ResultRecord>,
    /// No message of this version is sent: the reconciler re-drives the execution if it is
    /// still at this version this long (ms) after the commit. The submit intent's watchdog.
    pub due_in_ms: Option<u64>,
    /// A step committed in the same write right after this one (finalize, when it needs no
    /// delivery): its guard is the one committed, each step keeps its transition record.
    pub then: Option<Box<Step>>,
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
            result: None,
            due_in_ms: None,
            then: None,
        }
    }

    fn record(&self, from: crate::status::Status, at_ms: i64) -> TransitionRecord {
        TransitionRecord {
            version: self.next.version(),
            from: Some(from),
            to: self.next.status(),
            event: self.event,
            at_ms,
            action: self.action.to_string(),
            calls: self.calls.clone(),
            failure: self.failure.clone(),
            detail: self.detail.clone(),
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
        // An execution ending with nothing to deliver is finalized in the same commit.
        let mut step = self.finalize_now(step);
        self.check_crash(CrashPoint::AfterAction, &id)?;
        for (key, bytes) in std::mem::take(&mut step.blobs) {
            self.ports.blobs.put_once(&key, bytes).await?;
        }
        self.check_crash(CrashPoint::AfterBlobs, &id)?;
        let now = self.now();
        let mut records = vec![step.record(prev.status(), now)];
        let mut effects = std::mem::take(&mut step.effects);
        let mut due_in_ms = step.due_in_ms;
        let mut observed = vec![];
        let mut next = match step.then.take() {
            Some(mut then) => {
                records.push(then.record(step.next.status(), now));
                if self.observer.is_some() {
                    observed.push((step.next.clone(), records[0].clone()));
                }
                effects.extend(std::mem::take(&mut then.effects));
                due_in_ms = then.due_in_ms;
                then.next
            }
            None => step.next,
        };
        if self.observer.is_some()
            && let Some(last) = records.last()
        {
            observed.push((next.clone(), last.clone()));
        }
        next.outbox = Vec::with_capacity(effects.len() + 1);
        // The records are committed with their versions, in the guard's history; the history
        // is written out as one blob when it grows past its bounds.
        next.history.extend(records);
        if history_full(&next.history) {
            next.outbox.push(Effect::Records {
                records: std::mem::take(&mut next.history),
            });
        }
        next.next_due_ms = now + due_in_ms.unwrap_or(0) as i64;
        // This execution's own next message goes last, so its arrival proves the rest applied.
        let (own, others): (Vec<Effect>, Vec<Effect>) = effects.into_iter().partition(|e| {
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
        if let Some(observer) = &self.observer {
            for (guard, record) in &observed {
                observer.committed(guard, record);
            }
        }
        let _ = COMMITTED.try_with(|c| *c.borrow_mut() = Some(next.clone()));
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

tokio::task_local! {
    /// The guard last committed by the task running in this scope ([`Engine::committed_in`]).
    static COMMITTED: std::cell::RefCell<Option<Guard>>;
}

impl Engine {
    /// Runs `f` and returns, with its output, the last guard it committed (as committed, its
    /// outbox applied or pending): a caller that just ran a step needs no read to see it.
    pub(crate) async fn committed_in<F: std::future::Future>(f: F) -> (F::Output, Option<Guard>) {
        COMMITTED
            .scope(std::cell::RefCell::new(None), async move {
                let out = f.await;
                let last = COMMITTED.with(|c| c.borrow_mut().take());
                (out, last)
            })
            .await
    }

    /// A step into a terminal status, for an execution that has no webhook to deliver to and
    /// whose result is at hand: finalize is decided now (cost, outcome event) and committed in
    /// the same write ([`Step::then`]), so no finalize message is sent, read and committed on
    /// its own. Any other step is returned as it is.
    pub(crate) fn finalize_now(&self, mut step: Step) -> Step {
        let t = &step.next;
        let result_known =
            step.result.is_some() || (t.hot.result_key.is_none() && t.hot.result.is_none());
        if !t.status().is_terminal()
            || t.status().is_final()
            || t.webhook != Some(false)
            || !result_known
            || step.then.is_some()
        {
            return step;
        }
        let record = step
            .result
            .clone()
            .or_else(|| t.hot.result.as_deref().cloned());
        let result = record.as_ref().and_then(|r| r.result.as_ref());
        let driver = self.driver(&t.model).ok();
        let cost = crate::actions::finalize::cost_of(t, driver.as_deref(), result);
        let event = crate::actions::finalize::outcome_event(t, &cost, result);
        let Ok(mut then) = crate::actions::finalize::delivered(
            t,
            &crate::actions::Ctx::of(self),
            cost,
            event,
            None,
        ) else {
            return step;
        };
        // The finalize message is not sent (finalize is this commit), and a lease is
        // released once.
        let (id, version) = (t.id.clone(), t.version());
        step.effects.retain(|e| {
            !matches!(e, Effect::Send { queue: QueueName::Finalize, message, .. }
                if message.execution_id == id && message.version == Some(version))
        });
        let released: Vec<Effect> = step
            .effects
            .iter()
            .filter(|e| matches!(e, Effect::ReleaseLease { .. }))
            .cloned()
            .collect();
        then.effects.retain(|e| !released.contains(e));
        step.then = Some(Box::new(then));
        step
    }
}

/// Whether a history is past the bounds the guard item keeps ([`crate::model::HISTORY_MAX_RECORDS`],
/// [`crate::model::HISTORY_MAX_BYTES`]).
pub(crate) fn history_full(history: &[TransitionRecord]) -> bool {
    history.len() >= crate::model::HISTORY_MAX_RECORDS
        || serde_json::to_vec(history).map_or(true, |b| b.len() >= crate::model::HISTORY_MAX_BYTES)
}
