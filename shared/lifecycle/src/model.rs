//! The data of an execution: the immutable request, the guard record (status, version, hot
//! state, outbox), the normalized result and the records written for every transition.

use crate::status::Status;
use crate::taxonomy::{ErrorClass, Failure};
use crate::transitions::{self, Event, IllegalTransition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The three provider shapes a bundle can declare.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// The provider answers with the result in the create call; runs in the request path.
    Immediate,
    /// The provider returns a job id; we poll until terminal.
    Polling,
    /// The provider calls back; we also poll slowly so a lost callback never strands the job.
    Callback,
}

impl Shape {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Immediate => "immediate",
            Shape::Polling => "polling",
            Shape::Callback => "callback",
        }
    }
}

/// The immutable request, stored write-once at `executions/{id}/request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRequest {
    /// Execution id (`ex_` + ULID).
    pub id: String,
    /// The tenant that owns it.
    pub tenant: String,
    /// Model id (a bundle id).
    pub model: String,
    /// Validated input.
    pub input: Value,
    /// Where the customer wants the outcome delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// The customer's idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Acceptance time (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// The execution must be terminal by `created_at_ms + max_duration_ms`.
    pub max_duration_ms: u64,
    /// The fallback chain after the model, in order: each step's model and its input (mapped
    /// to that model and validated at create).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<FallbackStep>,
    /// The retries the request asked for (absent: the bundles' own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

/// One step of a fallback chain.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FallbackStep {
    /// The model.
    pub model: String,
    /// Its input (validated against its schema).
    #[schema(value_type = Object)]
    pub input: Value,
}

impl ExecutionRequest {
    /// The request as step `step` of the chain runs it (0: the model itself): that step's
    /// model and input, the rest the same.
    /// The fallbacks the request named, in order, each with the input its step ran with:
    /// the chain's steps without the retries (a step repeating the model before it).
    pub fn chain_steps(&self) -> Vec<crate::fallback::Target> {
        let mut out = Vec::new();
        let mut last = self.model.clone();
        for s in &self.fallbacks {
            if s.model != last {
                out.push(crate::fallback::Target {
                    model: s.model.clone(),
                    rename: Default::default(),
                    input: s.input.as_object().cloned().unwrap_or_default(),
                });
                last = s.model.clone();
            }
        }
        out
    }

    /// The request as step `step` of its chain runs it.
    pub fn at_step(&self, step: u32) -> ExecutionRequest {
        let mut r = self.clone();
        if step > 0
            && let Some(s) = self.fallbacks.get(step as usize - 1)
        {
            r.model = s.model.clone();
            r.input = s.input.clone();
        }
        r
    }
}

/// An attempt of a fallback chain that ended and was followed by the next step.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The chain step (0: the model asked for).
    pub step: u32,
    /// Its model.
    pub model: String,
    /// Its provider.
    pub provider: String,
    /// The provider's job id, if one was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// How it ended (a status of the attempt, `failed`).
    pub status: crate::status::Status,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// When it started (ms): acceptance, or the previous attempt's end.
    pub started_at_ms: i64,
    /// When it ended (ms).
    pub ended_at_ms: i64,
    /// The provider's answer, as a result blob (for support and replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_key: Option<String>,
    /// Its cost (what the provider charges for a failed job where it bills them: nothing
    /// here, failed jobs are not billed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
}

/// Which queue a message goes to. The action run is decided by the guard's status, the queue
/// only routes and bounds concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueName {
    /// Submit actions.
    Submit,
    /// Poll actions (and nudges from callbacks and cancels).
    Poll,
    /// Finalize actions.
    Finalize,
}

impl QueueName {
    /// All queues.
    pub const ALL: [QueueName; 3] = [QueueName::Submit, QueueName::Poll, QueueName::Finalize];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Submit => "submit",
            QueueName::Poll => "poll",
            QueueName::Finalize => "finalize",
        }
    }

    /// The queue that serves an execution in `status`.
    pub fn for_status(status: Status) -> QueueName {
        match status {
            Status::Queued | Status::Submitting => QueueName::Submit,
            Status::Submitted | Status::Running => QueueName::Poll,
            _ => QueueName::Finalize,
        }
    }
}

/// A queue message: "advance execution `execution_id` from `version`".
/// A message without a version is a nudge: it advances whatever version is current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// The execution.
    pub execution_id: String,
    /// The version this message expects to advance; `None` for a nudge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// An inflight lease held on a provider's capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The limiter scope (provider, or provider/model).
    pub scope: String,
    /// The lease id (deterministic per execution and attempt).
    pub id: String,
}

/// Why an execution is waiting instead of progressing.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wait {
    /// What it waits for (`capacity`, `retry`, `delivery_retry`).
    pub reason: String,
    /// Since when (ms).
    pub since_ms: i64,
    /// Until when it will wait before trying again (ms).
    pub until_ms: i64,
    /// More detail (the failure that caused a retry, the limiter scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The mutable part of an execution, committed with every version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HotState {
    /// The provider's job id, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Submit attempts made so far.
    #[serde(default)]
    pub attempt: u32,
    /// The id of the current submit intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_id: Option<String>,
    /// The inflight lease held, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Provider polls made.
    #[serde(default)]
    pub poll_count: u32,
    /// Looks taken again because the last look at the deadline or a cancel failed to reach
    /// the provider (bounded by `actions::poll::FINAL_LOOK_RETRIES`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub final_looks: u32,
    /// Submits refused for throttling or an open breaker (they don't use up attempts).
    #[serde(default)]
    pub throttled: u32,
    /// Callback ids already consumed by a poll.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumed_callbacks: Vec<String>,
    /// Blob key of the terminal result (a large one; a small one is [`HotState::result`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_key: Option<String>,
    /// The terminal result, when it is small enough to be kept in the item
    /// ([`KEPT_IN_ITEM_MAX_BYTES`] packed): no blob write, no blob read.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "packed::opt")]
    pub result: Option<Box<ResultRecord>>,
    /// The failure, for failed, timed-out and canceled executions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// Outcome delivery attempts.
    #[serde(default)]
    pub delivery_attempts: u32,
    /// The delivery failure, for `finalized_degraded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_error: Option<Failure>,
    /// What the execution waits for, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Wait>,
    /// The provider's own status string from the last poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    /// Progress 0..1 if the provider reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// The computed cost (at finalize).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// When the execution became terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_at_ms: Option<i64>,
    /// The terminal status reached (`succeeded`, `failed`, `canceled`, `timed_out`); kept
    /// after finalization so the outcome stays visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Status>,
    /// The fallback chain's current step (0: the model asked for).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step: u32,
    /// The chain's attempts that ended and were followed by the next step, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptRecord>,
    /// The models of the chain after the model asked for (empty: no chain), written with
    /// version 0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The guard record: one per execution, the single commit point.
///
/// `status` and `version` change only through [`Guard::advance`], which consults the
/// transition table. `cancel_requested` and `callbacks_received` are written outside commits
/// (they only ever grow) and are never overwritten by a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guard {
    /// Execution id.
    pub id: String,
    /// Owner.
    pub tenant: String,
    /// Model id.
    pub model: String,
    /// Provider family (limiter scope, failure piles).
    pub provider: String,
    /// Provider shape.
    pub shape: Shape,
    status: Status,
    version: u64,
    /// Acceptance time.
    pub created_at_ms: i64,
    /// Last commit time.
    pub updated_at_ms: i64,
    /// Hard deadline.
    pub deadline_ms: i64,
    /// When the message that advances this version is due (reconciler uses it).
    pub next_due_ms: i64,
    /// The hot state.
    pub hot: HotState,
    /// Effects committed with this version and not yet applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<Effect>,
    /// The transition records committed since the last batch was written out (committed
    /// with their versions, in the item: one blob per batch instead of one per version).
    /// Stored zstd-compressed (a guard write's cost grows with the item's size).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "history_codec")]
    pub history: Vec<TransitionRecord>,
    /// Set by the cancel API (not versioned).
    #[serde(default)]
    pub cancel_requested: bool,
    /// Ids of callbacks received and stored (not versioned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callbacks_received: Vec<String>,
    /// Bodies of received callbacks kept beside the guard (compressed, by callback id), for a
    /// store that keeps small ones ([`crate::GuardStore::record_callback_with_body`]); the
    /// others are blobs. Not versioned, never serialized into the record.
    #[serde(skip)]
    pub callback_bodies: std::collections::BTreeMap<String, Vec<u8>>,
    /// Callbacks refused (bad or stale signature, unreadable body), the first
    /// [`REJECTED_CALLBACKS_KEPT`] (not versioned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callbacks_rejected: Vec<RejectedCallback>,
    /// The reconciler's record of its failures to re-drive this execution (not versioned:
    /// written by [`crate::GuardStore::set_reconcile_failures`], overlaid on every read).
    /// [`Guard::parked`] says whether it is current and parks the execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_failures: Option<ReconcileFailures>,
    /// The execution this one reruns (`POST /v1/executions/{id}/rerun`): part of the
    /// immutable acceptance, written with version 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    /// Executions that rerun this one, oldest first (not versioned: the backend adds each
    /// link atomically with the rerun's insert, and overlays them on every read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reruns: Vec<String>,
    /// The batch this execution is an item of (`POST /v1/batches`), with its index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchMember>,
    /// What the execution reserved on its tenant's budgets at create, and its settlement
    /// (written by finalize's commit, moved on the budget items in the same transaction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::budget::BudgetHold>,
    /// The request, when it is small enough to be kept in the item
    /// ([`KEPT_IN_ITEM_MAX_BYTES`] packed); a larger one is the blob `executions/{id}/request`.
    /// Part of the immutable acceptance, written with version 0.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "packed::opt")]
    pub request: Option<Box<ExecutionRequest>>,
    /// Whether the request names a customer webhook (`None`: not known, a guard written before
    /// this field): without one, finalize needs no delivery and commits with the terminal
    /// transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<bool>,
}

/// The largest request or result kept in the guard item (its packed size, bytes); a larger
/// one is a blob. A guard write costs a write unit per KB of item, and every commit rewrites
/// the item, so only small ones pay for themselves (a blob is a PUT and a GET).
pub const KEPT_IN_ITEM_MAX_BYTES: usize = 1_536;

/// An execution's place in a batch.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMember {
    /// The batch id (`bat_` + ULID).
    pub id: String,
    /// The item's index in the batch (0-based).
    pub index: u32,
}

/// Reruns an execution may have (its links must fit its guard item).
pub const MAX_RERUNS: usize = 100;

/// What the reconciler remembers of an execution it could not re-drive: durable (in the guard
/// store, beside the guard), so the count, the backoff and the parking survive a restart, and
/// visible (a parked execution is a pile of `GET /v1/failures`). Written after each failed
/// try, removed after a successful one.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileFailures {
    /// The execution's version the failures are about. Once the execution committed another
    /// version, the record is stale: it is ignored (and removed by the next successful try).
    pub version: u64,
    /// Failed tries in a row at that version.
    pub failures: u32,
    /// When the first of them failed (ms).
    pub first_failure_ms: i64,
    /// When the last one failed (ms).
    pub last_failure_ms: i64,
    /// Why the last one failed.
    pub reason: String,
}

/// A provider job whose id came back after its submit had been resolved without it (the
/// watchdog found the intent first and failed the execution as ambiguous, or a cancel won):
/// recorded on the execution, and canceled at the provider through the bundle's cancel steps.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LateJob {
    /// The submit attempt that created it.
    pub attempt: u32,
    /// That attempt's id.
    pub attempt_id: String,
    /// The provider's job id.
    pub job_id: String,
    /// When its id arrived (ms).
    pub at_ms: i64,
    /// What the provider answered to the cancel (`accepted`, or the failure).
    pub provider_cancel: String,
}

/// How many callbacks an execution stores (a provider sends a handful per job; an attacker
/// who knows an execution id cannot grow its record without bound).
pub const CALLBACKS_KEPT: usize = 32;

/// How many refused callbacks an execution keeps (a flood of forged requests cannot grow it).
pub const REJECTED_CALLBACKS_KEPT: usize = 10;

/// A callback the webhook route refused.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedCallback {
    /// When it arrived (ms).
    pub at_ms: i64,
    /// Why it was refused (error class and message; never the body or the signature).
    pub reason: String,
}

impl Guard {
    /// The model the create asked for: the current attempt's, or, once a fallback chain moved
    /// on, the first attempt's. Listings and views name this one.
    pub fn requested_model(&self) -> &str {
        self.hot
            .attempts
            .first()
            .map_or(self.model.as_str(), |a| a.model.as_str())
    }

    /// Version 0 of a new execution, in `queued`.
    pub fn accepted(req: &ExecutionRequest, provider: &str, shape: Shape) -> Guard {
        Guard {
            history: Default::default(),
            id: req.id.clone(),
            tenant: req.tenant.clone(),
            model: req.model.clone(),
            provider: provider.to_string(),
            shape,
            status: Status::Queued,
            version: 0,
            created_at_ms: req.created_at_ms,
            updated_at_ms: req.created_at_ms,
            deadline_ms: req.created_at_ms.saturating_add(req.max_duration_ms as i64),
            next_due_ms: req.created_at_ms,
            hot: HotState::default(),
            outbox: Vec::new(),
            cancel_requested: false,
            callbacks_received: Vec::new(),
            callback_bodies: Default::default(),
            callbacks_rejected: Vec::new(),
            reconcile_failures: None,
            rerun_of: None,
            reruns: Vec::new(),
            budget: None,
            batch: None,
            request: None,
            webhook: Some(req.webhook_url.is_some()),
        }
    }

    /// The guard as JSON with its packed fields (history, request, result) plain: for a store
    /// that compresses the whole record, so they are not compressed twice. Read back like any
    /// guard JSON.
    pub fn to_plain_json(&self) -> Result<Value, crate::ports::StoreError> {
        let corrupt = |e: serde_json::Error| crate::ports::StoreError::Corrupt(e.to_string());
        let mut v = serde_json::to_value(self).map_err(corrupt)?;
        if !self.history.is_empty() {
            v["history"] = serde_json::to_value(&self.history).map_err(corrupt)?;
        }
        if let Some(r) = &self.request {
            v["request"] = serde_json::to_value(r).map_err(corrupt)?;
        }
        if let Some(r) = &self.hot.result {
            v["hot"]["result"] = serde_json::to_value(r).map_err(corrupt)?;
        }
        Ok(v)
    }

    /// Current status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Current committed version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The next version of this guard after `event`, checked against the transition table.
    /// The outbox starts empty and the transition record is queued in it.
    pub fn advance(&self, event: Event, now_ms: i64) -> Result<Guard, IllegalTransition> {
        let to = transitions::apply(self.status, event)?;
        let mut next = self.clone();
        next.status = to;
        next.version = self.version + 1;
        next.updated_at_ms = now_ms;
        next.outbox = Vec::new();
        next.hot.waiting = None;
        if to.is_terminal() && !self.status.is_terminal() {
            next.hot.terminal_at_ms = Some(now_ms);
            next.hot.outcome = Some(to);
        }
        Ok(next)
    }

    /// True when the outbox ends with this execution's own next message (for this version).
    /// Effects are applied in order, so that message arriving proves the whole outbox was
    /// applied: the outbox is then left for the next commit to replace instead of being
    /// cleared with a write of its own (see docs/architecture.md, "Self-settling outboxes").
    pub fn outbox_ends_in_own_message(&self) -> bool {
        matches!(
            self.outbox.last(),
            Some(Effect::Send { message, .. })
                if message.execution_id == self.id && message.version == Some(self.version)
        )
    }

    /// True when the outbox holds effects nobody else will prove applied: the reconciler must
    /// look at it once it is old. A self-settling outbox (above) is covered by `next_due_ms`
    /// instead, like any in-flight message.
    pub fn outbox_awaits_sweep(&self) -> bool {
        !self.outbox.is_empty() && !self.outbox_ends_in_own_message()
    }

    /// True while the execution still needs work: not final, or final with an outbox that
    /// nobody else will prove applied.
    pub fn needs_work(&self) -> bool {
        !self.status.is_final() || self.outbox_awaits_sweep()
    }

    /// The reconciler's failure record when it is current: about this version, of an
    /// execution that still needs work.
    pub fn reconcile_failing(&self) -> Option<&ReconcileFailures> {
        self.reconcile_failures
            .as_ref()
            .filter(|f| f.version == self.version && self.needs_work())
    }

    /// The reconciler's failure record when it parks the execution: current, and at least
    /// [`crate::engine::RECONCILE_PARK_AFTER`] failures in a row.
    pub fn parked(&self) -> Option<&ReconcileFailures> {
        self.reconcile_failing()
            .filter(|f| f.failures >= crate::engine::RECONCILE_PARK_AFTER)
    }

    /// Callbacks received and not yet consumed, oldest first.
    pub fn pending_callbacks(&self) -> Vec<String> {
        self.callbacks_received
            .iter()
            .filter(|c| !self.hot.consumed_callbacks.contains(c))
            .cloned()
            .collect()
    }

    /// The error class of the outcome, if the execution failed or was degraded.
    pub fn error_class(&self) -> Option<ErrorClass> {
        self.hot.error.as_ref().map(|e| e.class).or(self
            .hot
            .delivery_error
            .as_ref()
            .map(|e| e.class))
    }
}

/// An effect committed in the outbox and applied after the commit. Each is idempotent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    /// Send a message (duplicates are harmless: the version guard drops all but one).
    Send {
        /// Target queue.
        queue: QueueName,
        /// The message.
        message: Message,
        /// Delay before it becomes visible.
        delay_ms: u64,
    },
    /// Publish the outcome event downstream (deduplicated by event id).
    Publish {
        /// The event.
        event: Box<OutcomeEvent>,
    },
    /// Release an inflight lease (idempotent by lease id).
    ReleaseLease {
        /// The lease.
        lease: Lease,
    },
    /// Write the audit record of this transition (write-once key). Written by versions
    /// before the records were batched in the guard ([`Guard::history`]); still applied.
    Record {
        /// The record.
        record: Box<TransitionRecord>,
    },
    /// Write a batch of audit records, the guard's history up to this version, as one blob
    /// (`executions/{id}/transitions/{first:010}-{last:010}`).
    Records {
        /// The records, oldest first.
        records: Vec<TransitionRecord>,
    },
}

/// Most records the guard item holds before they are written out as one blob.
pub const HISTORY_MAX_RECORDS: usize = 16;
/// Most bytes (JSON) of records the guard item holds before they are written out.
pub const HISTORY_MAX_BYTES: usize = 12 * 1024;

/// The audit record of one committed transition: held in the guard's history, then written
/// with others as a batch at `executions/{id}/transitions/{first}-{last}`.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// The version this transition committed.
    pub version: u64,
    /// Status before (absent for acceptance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Status>,
    /// Status after.
    pub to: Status,
    /// The event.
    pub event: Event,
    /// When (ms).
    pub at_ms: i64,
    /// Which action committed it (`accept`, `submit`, `poll`, `finalize`, ...).
    pub action: String,
    /// Provider calls made by the action.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<CallRecord>,
    /// The failure involved, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Free-form facts (attempt, delay chosen, callback ids consumed, lease...).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// One outbound provider call, as recorded for `explain` (no secrets).
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Bundle step id.
    pub step: String,
    /// HTTP method.
    pub method: String,
    /// URL without query secrets.
    pub url: String,
    /// HTTP status, if a response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Latency in ms.
    pub latency_ms: u64,
    /// Transport error, if no response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why this call was followed by a retry (class and delay), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried: Option<String>,
}

/// The kind of a normalized output.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// An image.
    Image,
    /// A video.
    Video,
    /// Audio.
    Audio,
    /// Text.
    Text,
    /// Structured JSON.
    Json,
    /// A 3D model (GLB, FBX, OBJ, USDZ).
    #[serde(rename = "3d")]
    Model3d,
}

/// One normalized output.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// What it is.
    pub kind: OutputKind,
    /// Where to fetch it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Inline data: text, JSON, or base64 for small binary outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Duration in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
}

/// What a provider produced, normalized by the adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProviderResult {
    /// The outputs.
    pub outputs: Vec<Output>,
    /// Usage figures the cost is computed from (`predict_time`, `total_tokens`, ...).
    #[serde(default)]
    pub usage: Value,
    /// The provider's raw final response (for replay and support).
    #[serde(default)]
    pub raw: Value,
}

/// The terminal result blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// The terminal status it was recorded for.
    pub status: Status,
    /// Normalized result (present on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ProviderResult>,
    /// The failure (present otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// Raw provider response of a failure, if any.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

/// One line of a cost computation.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostLine {
    /// The billing unit (`second`, `token`, `image`, `character`, `credit`).
    pub unit: String,
    /// Quantity of units.
    pub quantity: f64,
    /// Price per unit in USD.
    pub unit_price_usd: f64,
    /// `quantity * unit_price_usd`, in micro-dollars.
    pub amount_usd_micros: i64,
    /// Where the quantity came from (`metrics.predict_time`, `usage.total_tokens`, ...).
    pub source: String,
}

/// The cost of an execution, computed at finalize.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Cost {
    /// Total in micro-dollars (what the provider charges us).
    pub provider_usd_micros: i64,
    /// Whether the customer is billed for this execution.
    pub billable: bool,
    /// The lines.
    pub lines: Vec<CostLine>,
}

/// The outcome event published downstream (billing, CRM) exactly once per execution id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeEvent {
    /// Stable event id (`evt_` + execution id): the same forever.
    pub id: String,
    /// `execution.succeeded`, `execution.failed`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Execution id.
    pub execution_id: String,
    /// Owner.
    pub tenant: String,
    /// Model.
    pub model: String,
    /// Provider.
    pub provider: String,
    /// Terminal status.
    pub status: Status,
    /// Normalized outputs.
    pub outputs: Vec<Output>,
    /// Error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// Cost breakdown.
    pub cost: Cost,
    /// Usage figures.
    #[serde(default)]
    pub usage: Value,
    /// Acceptance time.
    pub created_at_ms: i64,
    /// Terminal time.
    pub completed_at_ms: i64,
}

/// The guard's history as stored: `"zstd:" + base64(zstd(JSON))`; a plain JSON array is
/// read too.
mod history_codec {
    use super::TransitionRecord;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(records: &[TransitionRecord], s: S) -> Result<S::Ok, S::Error> {
        super::packed::serialize(&records, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TransitionRecord>, D::Error> {
        super::packed::deserialize(d)
    }
}

/// A value kept in the guard item zstd-compressed and base64-encoded (`"zstd:..."`); plain
/// JSON is read too. A guard write's cost grows with the item's size.
pub(crate) mod packed {
    use base64::Engine as _;
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    const PREFIX: &str = "zstd:";

    /// The packed text of a value.
    pub fn pack<T: Serialize>(value: &T) -> Result<String, crate::ports::StoreError> {
        let bytes = crate::blobs::encode(value)?;
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ))
    }

    pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&pack(value).map_err(serde::ser::Error::custom)?)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::String(text) => {
                let b64 = text
                    .strip_prefix(PREFIX)
                    .ok_or_else(|| serde::de::Error::custom("packed value: unknown encoding"))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(serde::de::Error::custom)?;
                crate::blobs::decode(&bytes).map_err(serde::de::Error::custom)
            }
            plain => serde_json::from_value(plain).map_err(serde::de::Error::custom),
        }
    }

    /// The same for an optional value.
    pub mod opt {
        use serde::de::DeserializeOwned;
        use serde::{Deserializer, Serialize, Serializer};

        pub fn serialize<T: Serialize, S: Serializer>(
            value: &Option<T>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<T>, D::Error> {
            super::deserialize::<Option<T>, D>(d)
        }
    }
}
