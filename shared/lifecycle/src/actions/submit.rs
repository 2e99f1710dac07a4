//! Submit: validate, take provider capacity, commit the intent, create the job (or run it, for
//! immediate models), and schedule what comes next. Also the resolution of an intent found
//! without a job id (ambiguous submit).
//!
//! The decisions come first (pure: guard, answers, clock → [`Step`]), the runners after them.

use super::{Ctx, call_context, commit, keep_result, load_request, send_next, terminal_effects};
use crate::engine::{Engine, EngineError};
use crate::model::{Effect, Guard, Lease, QueueName, ResultRecord, Shape, Wait};
use crate::protocol::{Committed, Handled, Step};
use crate::provider::{
    AmbiguousPolicy, JobCreation, LookupOutcome, ModelDriver, ModelSpec, Reply, SubmitOutcome,
};
use crate::status::Status;
use crate::taxonomy::{ErrorClass, Failure};
use crate::transitions::Event;
use serde_json::{Value, json};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------------

/// Why submit ends before taking capacity or calling anyone, if it does: a cancel requested,
/// or the deadline passed.
pub(crate) fn precheck(guard: &Guard, now: i64) -> Option<(Event, Failure)> {
    if guard.cancel_requested {
        return Some((
            Event::Canceled,
            Failure::new(ErrorClass::Canceled, "canceled before submit"),
        ));
    }
    if now >= guard.deadline_ms {
        return Some((
            Event::DeadlineExceeded,
            Failure::new(
                ErrorClass::Timeout,
                "maximum duration reached before the provider accepted the job",
            ),
        ));
    }
    None
}

/// Ends an execution before any provider call (canceled, deadline, invalid, unknown model).
pub(crate) fn end_early(
    guard: &Guard,
    ctx: &Ctx,
    event: Event,
    failure: Failure,
) -> Result<Step, EngineError> {
    let mut next = guard.advance(event, ctx.now)?;
    next.hot.error = Some(failure.clone());
    let mut step = Step::new(next.clone(), event, "submit");
    // A lease this attempt may have taken before a crash or a failed commit (the chaos suite
    // found one held after the execution was canceled before its retry): its id is
    // deterministic, and releasing a lease nobody holds changes nothing.
    step.effects.push(Effect::ReleaseLease {
        lease: lease_at(guard),
    });
    step.effects.extend(terminal_effects(&next));
    step.failure = Some(failure);
    Ok(step)
}

/// Whether the chain has a step after the current one on another model (somewhere to fall
/// back to).
pub(crate) fn has_other_model(guard: &Guard) -> bool {
    guard.hot.chain[(guard.hot.step as usize).min(guard.hot.chain.len())..]
        .iter()
        .any(|m| *m != guard.model)
}

/// The lease an acquisition at `guard`'s version holds: unique per acquisition, since every
/// retry and throttled wait commits a new version, and deterministic, so a duplicate message
/// of the same version takes the same one. A release frees only that acquisition.
pub(crate) fn lease_at(guard: &Guard) -> Lease {
    Lease {
        scope: guard.provider.clone(),
        id: format!(
            "{}:{}:v{}",
            guard.id,
            guard.hot.attempt + 1,
            guard.version()
        ),
    }
}

/// How long a lease taken now may live: to the deadline plus the margin, so a crash never
/// leaks capacity past it.
pub(crate) fn lease_ttl_ms(guard: &Guard, ctx: &Ctx) -> u64 {
    (guard.deadline_ms - ctx.now).max(0) as u64 + ctx.config.lease_margin_ms
}

/// Every slot of the provider is taken: wait with a growing, jittered backoff (a crowd of
/// waiting executions spreads out instead of polling the limiter in lockstep).
pub(crate) fn capacity_wait(
    guard: &Guard,
    ctx: &Ctx,
    scope: &str,
    capacity: u32,
) -> Result<Step, EngineError> {
    let base = ctx.config.scaled(ctx.config.capacity_wait_ms).max(1) << guard.hot.throttled.min(4);
    let delay = base + ctx.below(base);
    let mut next = guard.advance(Event::CapacityWait, ctx.now)?;
    next.hot.throttled += 1;
    next.hot.waiting = Some(Wait {
        reason: "capacity".into(),
        since_ms: guard
            .hot
            .waiting
            .as_ref()
            .map(|w| w.since_ms)
            .unwrap_or(ctx.now),
        until_ms: ctx.now + delay as i64,
        detail: Some(format!("{scope} has {capacity} inflight slots, all taken")),
    });
    let mut step = Step::new(next.clone(), Event::CapacityWait, "submit");
    step.effects
        .push(send_next(&next, QueueName::Submit, delay));
    step.detail = json!({"scope": scope, "capacity": capacity, "delay_ms": delay});
    Ok(step)
}

/// The intent, committed before the non-idempotent create call: the next attempt, its id and
/// lease, and the due time at which the reconciler finds the intent if the worker dies
/// mid-call (no message is sent for it).
pub(crate) fn intent(
    guard: &Guard,
    ctx: &Ctx,
    spec: &ModelSpec,
    lease: Option<Lease>,
    attempt_id: String,
) -> Result<Step, EngineError> {
    let attempt = guard.hot.attempt + 1;
    let mut intent = guard.advance(Event::SubmitStarted, ctx.now)?;
    intent.hot.attempt = attempt;
    intent.hot.attempt_id = Some(attempt_id);
    intent.hot.lease = lease;
    let watchdog = ctx.config.scaled(spec.submit_timeout_ms) + ctx.config.watchdog_margin_ms;
    let mut step = Step::new(intent.clone(), Event::SubmitStarted, "submit");
    // No watchdog message: the message being handled is in flight, and should this worker
    // die mid-call, the reconciler finds the intent once it is this overdue.
    step.due_in_ms = Some(watchdog);
    step.detail =
        json!({"attempt": attempt, "attempt_id": intent.hot.attempt_id, "watchdog_ms": watchdog});
    Ok(step)
}

/// How long the create call may run: the bundle's submit timeout plus half the watchdog
/// margin, so its answer is committed before the watchdog (timeout + margin) finds the
/// intent.
pub(crate) fn call_limit_ms(ctx: &Ctx, spec: &ModelSpec) -> u64 {
    ctx.config.scaled(spec.submit_timeout_ms) + ctx.config.watchdog_margin_ms / 2
}

/// The answer of a create call cut at its limit: it may still have created the job.
pub(crate) fn cut_short(limit_ms: u64) -> Reply<SubmitOutcome> {
    Reply {
        outcome: SubmitOutcome::Rejected {
            failure: Failure::new(
                ErrorClass::Timeout,
                format!("the submit calls outlasted the model's submit timeout ({limit_ms} ms)"),
            ),
            creation: JobCreation::Unknown,
            raw: Value::Null,
        },
        calls: vec![],
        events: vec![],
    }
}

/// Whether the create's answer leaves it unknown whether a job exists (then the bundle's
/// lookup, if it has one, is asked).
pub(crate) fn is_ambiguous(outcome: &SubmitOutcome) -> bool {
    matches!(
        outcome,
        SubmitOutcome::Rejected {
            creation: JobCreation::Unknown,
            ..
        }
    )
}

/// What the create call (and the lookup after an ambiguous one) means for the intent: the
/// job found is this execution's job (no second one is bought); an inline result completes
/// it; a refusal is retried or fails; an ambiguity goes to the bundle's policy.
pub(crate) fn answered(
    intent: &Guard,
    ctx: &Ctx,
    spec: &ModelSpec,
    reply: Reply<SubmitOutcome>,
    lookup: Option<Reply<LookupOutcome>>,
) -> Result<Step, EngineError> {
    let mut reply = reply;
    let mut lookup_note = Value::Null;
    if let Some(found) = lookup {
        reply.calls.extend(found.calls);
        let cause = match &reply.outcome {
            SubmitOutcome::Rejected { failure, .. } => failure.to_string(),
            _ => String::new(),
        };
        match found.outcome {
            LookupOutcome::Found(job_id) => {
                lookup_note = json!({"ambiguous": cause, "lookup": "found", "job_id": job_id});
                reply.outcome = SubmitOutcome::Created {
                    job_id,
                    raw: Value::Null,
                };
            }
            LookupOutcome::NotFound => lookup_note = json!({"lookup": "not found"}),
            LookupOutcome::Failed(f) => lookup_note = json!({"lookup": format!("failed: {f}")}),
            LookupOutcome::Unsupported => {}
        }
    }
    let mut step = match reply.outcome {
        SubmitOutcome::Created { job_id, raw } => created(intent, ctx, spec, job_id, &raw)?,
        SubmitOutcome::Completed(result) => {
            let (event, status, failure) = if result.outputs.is_empty() {
                let f = Failure::new(
                    ErrorClass::PartialResult,
                    "the provider reported success with no output",
                );
                (Event::SubmitFailed, Status::Failed, Some(f))
            } else {
                (Event::CompletedInline, Status::Succeeded, None)
            };
            let mut next = intent.advance(event, ctx.now)?;
            next.hot.error = failure.clone();
            let record = ResultRecord {
                status,
                result: Some(result),
                error: failure.clone(),
                raw: Value::Null,
            };
            let mut step = Step::new(next.clone(), event, "submit");
            step.effects = terminal_effects(&next);
            step.failure = failure;
            keep_result(&mut step, record)?;
            step
        }
        SubmitOutcome::Rejected {
            failure,
            creation,
            raw,
        } => rejected(intent, ctx, spec, failure, creation, raw)?,
    };
    step.calls = reply.calls;
    crate::provider::note_events(&mut step.detail, reply.events);
    if !lookup_note.is_null() {
        if !step.detail.is_object() {
            step.detail = json!({});
        }
        step.detail["lookup"] = lookup_note;
    }
    Ok(step)
}

/// The step that records the job the provider created and schedules its first poll (a
/// callback already stored is consumed at once).
pub(crate) fn created(
    intent: &Guard,
    ctx: &Ctx,
    spec: &ModelSpec,
    job_id: String,
    raw: &Value,
) -> Result<Step, EngineError> {
    let mut next = intent.advance(Event::JobCreated, ctx.now)?;
    next.hot.job_id = Some(job_id.clone());
    next.hot.provider_status = raw
        .get("status")
        .and_then(|s| s.as_str())
        .map(str::to_string);
    let delay = match spec.shape {
        Shape::Callback if !intent.pending_callbacks().is_empty() => 0,
        Shape::Callback => ctx.config.scaled(spec.safety_poll_ms),
        _ => ctx.config.scaled(spec.poll.delay_ms(0)),
    };
    let mut step = Step::new(next.clone(), Event::JobCreated, "submit");
    step.effects.push(send_next(&next, QueueName::Poll, delay));
    step.detail = json!({"job_id": job_id, "next_poll_ms": delay});
    Ok(step)
}

/// The step after a refused create call: throttling and an open breaker wait without using
/// an attempt; other retryable refusals use one; the rest (or the last) fail.
pub(crate) fn rejected(
    intent: &Guard,
    ctx: &Ctx,
    spec: &ModelSpec,
    failure: Failure,
    creation: JobCreation,
    raw: Value,
) -> Result<Step, EngineError> {
    if creation == JobCreation::Unknown {
        return ambiguous(intent, ctx, spec.ambiguous_submit, Some(failure));
    }
    let now = ctx.now;
    let attempt = intent.hot.attempt;
    // Throttling and an open breaker mean the provider did nothing: wait and retry until the
    // deadline without using up an attempt — unless a chain has another model to go to: then
    // they count as attempts, and past `max_submit_attempts` the chain moves on ("rate
    // limited past its retry budget").
    let waiting_only = matches!(
        failure.class,
        ErrorClass::RateLimited | ErrorClass::ProviderUnavailable
    ) && !has_other_model(intent);
    let backoff_step = if waiting_only {
        intent.hot.throttled
    } else {
        attempt.saturating_sub(1)
    };
    let delay = ctx.backoff_ms(
        ctx.config.submit_retry_base_ms,
        ctx.config.submit_retry_max_ms,
        backoff_step,
        failure.retry_after_ms.unwrap_or(0),
    );
    let in_time = now + (delay as i64) < intent.deadline_ms;
    if failure.class.is_retryable()
        && (waiting_only || attempt < spec.max_submit_attempts)
        && in_time
    {
        let mut next = intent.advance(Event::SubmitRetry, now)?;
        next.hot.lease = None;
        if waiting_only {
            next.hot.attempt = attempt.saturating_sub(1);
            next.hot.throttled += 1;
        }
        let reason = match failure.provider_code.as_deref() {
            Some("circuit_open") => "breaker_open",
            Some("bulkhead_full") => "bulkhead_full",
            _ if failure.class == ErrorClass::RateLimited => "rate_limited",
            _ if failure.class == ErrorClass::ProviderUnavailable => "provider_unavailable",
            _ => "retry",
        };
        next.hot.waiting = Some(Wait {
            reason: reason.into(),
            since_ms: now,
            until_ms: now + delay as i64,
            detail: Some(failure.to_string()),
        });
        let mut step = Step::new(next.clone(), Event::SubmitRetry, "submit");
        if let Some(lease) = &intent.hot.lease {
            step.effects.push(Effect::ReleaseLease {
                lease: lease.clone(),
            });
        }
        step.effects
            .push(send_next(&next, QueueName::Submit, delay));
        step.detail = json!({"attempt": attempt, "retry_in_ms": delay, "wait": reason});
        step.failure = Some(failure);
        return Ok(step);
    }
    let mut next = intent.advance(Event::SubmitFailed, now)?;
    next.hot.error = Some(failure.clone());
    let record = ResultRecord {
        status: Status::Failed,
        result: None,
        error: Some(failure.clone()),
        raw,
    };
    let mut step = Step::new(next.clone(), Event::SubmitFailed, "submit");
    step.effects = terminal_effects(&next);
    step.detail = json!({"attempt": attempt, "retries_exhausted": failure.class.is_retryable()});
    step.failure = Some(failure);
    keep_result(&mut step, record)?;
    Ok(step)
}

/// An intent whose create may or may not have made a job: resubmit only where the bundle
/// says a duplicate is harmless (and there is time), otherwise fail as `submit_ambiguous`
/// rather than risk a second paid job.
pub(crate) fn ambiguous(
    intent: &Guard,
    ctx: &Ctx,
    policy: AmbiguousPolicy,
    cause: Option<Failure>,
) -> Result<Step, EngineError> {
    let detail = cause
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "submit intent found without a job id (worker lost mid-call)".into());
    if policy == AmbiguousPolicy::Resubmit && ctx.now < intent.deadline_ms {
        let mut next = intent.advance(Event::SubmitRetry, ctx.now)?;
        next.hot.lease = None;
        let mut step = Step::new(next.clone(), Event::SubmitRetry, "submit");
        if let Some(lease) = &intent.hot.lease {
            step.effects.push(Effect::ReleaseLease {
                lease: lease.clone(),
            });
        }
        step.effects.push(send_next(&next, QueueName::Submit, 0));
        step.detail = json!({"ambiguous": true, "policy": "resubmit", "cause": detail});
        step.failure = cause;
        return Ok(step);
    }
    let failure = Failure::new(ErrorClass::SubmitAmbiguous, detail);
    let mut next = intent.advance(Event::SubmitAmbiguous, ctx.now)?;
    next.hot.error = Some(failure.clone());
    let mut step = Step::new(next.clone(), Event::SubmitAmbiguous, "submit");
    step.effects = terminal_effects(&next);
    step.detail = json!({"ambiguous": true, "policy": "fail", "attempt_id": intent.hot.attempt_id});
    step.failure = Some(failure);
    Ok(step)
}

/// An intent found without a job id whose job the bundle's lookup found at the provider.
pub(crate) fn found_by_lookup(
    intent: &Guard,
    ctx: &Ctx,
    spec: &ModelSpec,
    job_id: String,
    calls: Vec<crate::model::CallRecord>,
) -> Result<Step, EngineError> {
    let mut step = created(intent, ctx, spec, job_id.clone(), &Value::Null)?;
    step.calls = calls;
    step.detail["lookup"] = json!({"ambiguous": "submit intent found without a job id", "lookup": "found", "job_id": job_id});
    Ok(step)
}

/// Whether the lease a lost intent took is free to release: the execution as committed now
/// does not hold it. A duplicate message of the same version takes the same lease id; when
/// its intent won, the winner's create runs under that lease, and releasing it would let one
/// more job run than the provider's capacity (the chaos suite measured 11 Runway jobs at once
/// on a capacity of 8 at the simulator).
///
/// An execution that ended holds no capacity, whatever its record says: its terminal step
/// released the lease. A duplicate that took the same lease id after that release (it read
/// the guard before the winner's intent and reached the limiter after the winner ended; the
/// AWS chaos run left such leases until their expiry) releases it too.
pub(crate) fn lost_lease_is_free(lease: &Lease, current: Option<&Guard>) -> bool {
    current.is_none_or(|g| {
        g.status().is_terminal() || g.hot.lease.as_ref().is_none_or(|held| held.id != lease.id)
    })
}

/// Whether a job id that came back after its intent lost the commit race belongs to nobody
/// now: the execution moved on to another attempt, or was resolved without a job (the
/// watchdog failed it as ambiguous, a cancel ended it).
pub(crate) fn orphaned(intent: &Guard, current: Option<&Guard>) -> bool {
    current.is_some_and(|g| {
        g.version() > intent.version()
            && (g.hot.attempt_id != intent.hot.attempt_id || g.hot.job_id.is_none())
    })
}

// ---------------------------------------------------------------------------------------------
// Runners
// ---------------------------------------------------------------------------------------------

/// Runs submit for an execution in `queued`.
pub(crate) async fn run(engine: &Engine, guard: Guard) -> Result<Handled, EngineError> {
    let ctx = Ctx::of(engine);
    if let Some((event, failure)) = precheck(&guard, ctx.now) {
        return commit(engine, &guard, end_early(&guard, &ctx, event, failure)?).await;
    }
    let driver = match engine.driver(&guard.model) {
        Ok(d) => d,
        Err(f) => {
            let step = end_early(&guard, &ctx, Event::SubmitFailed, f)?;
            return commit(engine, &guard, step).await;
        }
    };
    let spec = driver.spec().clone();
    let request = load_request(engine, &guard).await?;
    if let Err(f) = driver.validate(&request.input) {
        let step = end_early(&guard, &ctx, Event::SubmitFailed, f)?;
        return commit(engine, &guard, step).await;
    }

    // Health-aware routing: a chain with another model still to come skips this one when
    // its breaker is open or its capacity taken, instead of waiting or paying a failed
    // attempt first (the fell_back transition records `skipped`).
    let can_skip = has_other_model(&guard);
    if can_skip && !driver.healthy() {
        let f = Failure::new(
            ErrorClass::ProviderUnavailable,
            format!("{}'s circuit breaker is open: skipped", spec.provider),
        )
        .with_code("circuit_open");
        let step = end_early(&guard, &ctx, Event::SubmitFailed, f)?;
        return commit(engine, &guard, step).await;
    }
    let mut lease = None;
    if let Some(capacity) = spec.capacity {
        let l = lease_at(&guard);
        let ttl = lease_ttl_ms(&guard, &ctx);
        if !engine
            .ports
            .limiter
            .acquire(&l.scope, &l.id, capacity, ttl)
            .await?
        {
            if can_skip {
                let f = Failure::new(
                    ErrorClass::ProviderUnavailable,
                    format!(
                        "{} has {capacity} inflight slots, all taken: skipped",
                        l.scope
                    ),
                )
                .with_code("capacity_exhausted");
                let step = end_early(&guard, &ctx, Event::SubmitFailed, f)?;
                return commit(engine, &guard, step).await;
            }
            let step = capacity_wait(&guard, &ctx, &l.scope, capacity)?;
            return commit(engine, &guard, step).await;
        }
        lease = Some(l);
    }

    let attempt_id = ulid::Ulid::new().to_string().to_lowercase();
    let step = intent(&guard, &ctx, &spec, lease.clone(), attempt_id)?;
    let intent = match engine.commit_step(&guard, step).await? {
        Committed::Won(g) => *g,
        Committed::Lost => {
            // The intent lost the race (a cancel or another worker committed first): the
            // lease taken for it is nobody's — unless the winner is a duplicate of this very
            // message, which took the same lease id and runs the create under it. Release it
            // now only when the execution as committed does not hold it, instead of leaving
            // it to its expiry. (An error is different: the commit may have happened — a
            // crash after it — and the redelivered message takes the same lease id again.)
            if let Some(l) = &lease {
                let current = engine.ports.guards.get(&guard.id).await?;
                if lost_lease_is_free(l, current.as_ref())
                    && let Err(e) = engine.ports.limiter.release(&l.scope, &l.id).await
                {
                    tracing::warn!(execution_id = %guard.id, error = %e, "could not release the lease of a lost intent");
                }
            }
            return Ok(Handled::Stale);
        }
    };

    let call = call_context(engine, &intent, request);
    // Cut short, the call may still have created the job: ambiguous.
    let limit = call_limit_ms(&ctx, &spec);
    let reply = tokio::time::timeout(
        std::time::Duration::from_millis(limit),
        driver.submit(&call),
    )
    .await
    .unwrap_or_else(|_| cut_short(limit));
    let lookup = if is_ambiguous(&reply.outcome) {
        Some(driver.lookup(&call).await)
    } else {
        None
    };
    let step = answered(&intent, &Ctx::of(engine), &spec, reply, lookup)?;
    let created = (step.event == Event::JobCreated)
        .then(|| step.next.hot.job_id.clone())
        .flatten();
    let committed = engine.commit_step(&intent, step).await?;
    if let (Committed::Lost, Some(job_id)) = (&committed, created) {
        late_job(engine, &intent, &driver, call, job_id).await?;
    }
    Ok(match committed {
        Committed::Won(_) => Handled::Done,
        Committed::Lost => Handled::Stale,
    })
}

/// The job id came back, but the intent was resolved meanwhile: the job exists and nobody
/// will poll it. Cancel it at the provider and record it on the execution (`explain` and the
/// timeline show it), write-once per attempt so a redelivery records it once.
async fn late_job(
    engine: &Engine,
    intent: &Guard,
    driver: &Arc<dyn ModelDriver>,
    mut call: crate::provider::CallContext,
    job_id: String,
) -> Result<(), EngineError> {
    let current = engine.ports.guards.get(&intent.id).await?;
    if !orphaned(intent, current.as_ref()) {
        return Ok(());
    }
    call.job_id = Some(job_id.clone());
    let reply = driver.cancel(&call).await;
    let provider_cancel = match &reply.outcome {
        Ok(()) => "accepted".to_string(),
        Err(f) => f.to_string(),
    };
    tracing::warn!(execution_id = %intent.id, job_id, provider_cancel, "a job id arrived after its submit was resolved; canceled at the provider");
    let note = crate::model::LateJob {
        attempt: intent.hot.attempt,
        attempt_id: intent.hot.attempt_id.clone().unwrap_or_default(),
        job_id,
        at_ms: engine.now(),
        provider_cancel,
    };
    crate::blobs::put_json(
        engine.ports.blobs.as_ref(),
        &crate::keys::late_job(&intent.id, &note.attempt_id),
        &note,
    )
    .await?;
    Ok(())
}

/// Runs for an execution found in `submitting` by its own (watchdog or redelivered) message:
/// the create call's fate is unknown. The bundle may find the job at the provider by the
/// reference it echoes; otherwise the policy decides.
pub(crate) async fn resolve_ambiguous(
    engine: &Engine,
    guard: Guard,
) -> Result<Handled, EngineError> {
    let driver = engine.driver(&guard.model).ok();
    let policy = driver
        .as_ref()
        .map(|d| d.spec().ambiguous_submit)
        .unwrap_or_default();
    if let Some(driver) = &driver
        && let Some(request) = engine.request_of(&guard).await?
    {
        let call = call_context(engine, &guard, request);
        let found = driver.lookup(&call).await;
        if let LookupOutcome::Found(job_id) = found.outcome {
            let spec = driver.spec().clone();
            let step = found_by_lookup(&guard, &Ctx::of(engine), &spec, job_id, found.calls)?;
            return commit(engine, &guard, step).await;
        }
    }
    let step = ambiguous(&guard, &Ctx::of(engine), policy, None)?;
    commit(engine, &guard, step).await
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )]
    use super::super::testing::{config, ctx, queued};
    use super::*;
    use crate::model::{Output, OutputKind, ProviderResult};
    use crate::provider::PollPolicy;

    fn spec(shape: Shape, policy: AmbiguousPolicy) -> ModelSpec {
        ModelSpec {
            job_retries: 0,
            id: "luma/ray-2".into(),
            provider: "luma".into(),
            shape,
            description: String::new(),
            input_schema: json!({}),
            max_duration_ms: 60_000,
            max_submit_attempts: 3,
            submit_timeout_ms: 20_000,
            poll: PollPolicy {
                initial_delay_ms: 2_000,
                max_delay_ms: 10_000,
                multiplier: 2.0,
            },
            safety_poll_ms: 30_000,
            capacity: Some(1),
            ambiguous_submit: policy,
        }
    }

    fn reply(outcome: SubmitOutcome) -> Reply<SubmitOutcome> {
        Reply {
            outcome,
            calls: vec![],
            events: vec![],
        }
    }

    fn lookup(outcome: LookupOutcome) -> Option<Reply<LookupOutcome>> {
        Some(Reply {
            outcome,
            calls: vec![],
            events: vec![],
        })
    }

    fn ambiguous_5xx() -> SubmitOutcome {
        SubmitOutcome::Rejected {
            failure: Failure::new(ErrorClass::ProviderUnavailable, "HTTP 502 after sending"),
            creation: JobCreation::Unknown,
            raw: Value::Null,
        }
    }

    fn intent_of(guard: &Guard, c: &Ctx, s: &ModelSpec) -> Guard {
        let lease = Some(lease_at(guard));
        intent(guard, c, s, lease, "att1".into()).unwrap().next
    }

    fn sends(step: &Step) -> Vec<(QueueName, u64)> {
        step.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send {
                    queue, delay_ms, ..
                } => Some((*queue, *delay_ms)),
                _ => None,
            })
            .collect()
    }

    // Item 1: a create that may have reached the provider is never repeated silently.
    #[test]
    fn an_ambiguous_create_fails_as_ambiguous_under_the_fail_policy_and_is_never_resubmitted() {
        let cfg = config();
        let c = ctx(&cfg, 2_000);
        let s = spec(Shape::Polling, AmbiguousPolicy::Fail);
        let intent = intent_of(&queued("luma", Shape::Polling), &c, &s);
        let step = answered(&intent, &c, &s, reply(ambiguous_5xx()), None).unwrap();
        assert_eq!(step.event, Event::SubmitAmbiguous);
        assert_eq!(step.next.status(), Status::Failed);
        assert_eq!(
            step.failure.as_ref().map(|f| f.class),
            Some(ErrorClass::SubmitAmbiguous)
        );
        assert!(
            !sends(&step).iter().any(|(q, _)| *q == QueueName::Submit),
            "no second create is scheduled"
        );
        // The lease of the attempt goes back with the terminal step.
        assert!(
            step.effects
                .iter()
                .any(|e| matches!(e, Effect::ReleaseLease { .. }))
        );
    }

    #[test]
    fn an_ambiguous_create_is_resubmitted_only_where_the_bundle_says_a_duplicate_is_harmless() {
        let cfg = config();
        let c = ctx(&cfg, 2_000);
        let s = spec(Shape::Polling, AmbiguousPolicy::Resubmit);
        let intent = intent_of(&queued("luma", Shape::Polling), &c, &s);
        let step = answered(&intent, &c, &s, reply(ambiguous_5xx()), None).unwrap();
        assert_eq!(step.event, Event::SubmitRetry);
        assert_eq!(sends(&step), vec![(QueueName::Submit, 0)]);
    }

    #[test]
    fn an_ambiguous_create_found_by_the_lookup_is_this_executions_job() {
        let cfg = config();
        let c = ctx(&cfg, 2_000);
        let s = spec(Shape::Polling, AmbiguousPolicy::Fail);
        let intent = intent_of(&queued("luma", Shape::Polling), &c, &s);
        let step = answered(
            &intent,
            &c,
            &s,
            reply(ambiguous_5xx()),
            lookup(LookupOutcome::Found("gen-123".into())),
        )
        .unwrap();
        assert_eq!(step.event, Event::JobCreated);
        assert_eq!(step.next.hot.job_id.as_deref(), Some("gen-123"));
        assert_eq!(step.detail["lookup"]["lookup"], "found");
        assert_eq!(sends(&step), vec![(QueueName::Poll, 2_000)]);
        // Not found: the policy decides, and the note says what the lookup saw.
        let step = answered(
            &intent,
            &c,
            &s,
            reply(ambiguous_5xx()),
            lookup(LookupOutcome::NotFound),
        )
        .unwrap();
        assert_eq!(step.event, Event::SubmitAmbiguous);
        assert_eq!(step.detail["lookup"]["lookup"], "not found");
    }

    #[test]
    fn a_create_cut_at_its_limit_is_ambiguous_and_the_limit_is_inside_the_watchdog() {
        let cfg = config();
        let c = ctx(&cfg, 2_000);
        let s = spec(Shape::Immediate, AmbiguousPolicy::Fail);
        let limit = call_limit_ms(&c, &s);
        let step = intent(
            &queued("openai", Shape::Immediate),
            &c,
            &s,
            None,
            "a".into(),
        )
        .unwrap();
        // The intent sends no message: the reconciler's due time is the watchdog.
        assert!(sends(&step).is_empty(), "{:?}", sends(&step));
        let watchdog = step.due_in_ms.unwrap();
        assert!(
            limit < watchdog,
            "call limit {limit} ms, watchdog {watchdog} ms"
        );
        assert!(is_ambiguous(&cut_short(limit).outcome));
    }

    #[test]
    fn a_refusal_that_created_nothing_is_retried_with_an_attempt_and_rate_limits_without() {
        let cfg = config();
        let c = ctx(&cfg, 2_000);
        let s = spec(Shape::Polling, AmbiguousPolicy::Fail);
        let intent = intent_of(&queued("luma", Shape::Polling), &c, &s);
        let refused = |class| SubmitOutcome::Rejected {
            failure: Failure::new(class, "refused"),
            creation: JobCreation::NotCreated,
            raw: Value::Null,
        };
        let step = answered(
            &intent,
            &c,
            &s,
            reply(refused(ErrorClass::RateLimited)),
            None,
        )
        .unwrap();
        assert_eq!(step.event, Event::SubmitRetry);
        assert_eq!(step.next.hot.attempt, 0, "a 429 uses no attempt");
        assert_eq!(step.next.hot.throttled, 1);
        let step = answered(
            &intent,
            &c,
            &s,
            reply(refused(ErrorClass::ValidationError)),
            None,
        )
        .unwrap();
        assert_eq!(step.event, Event::SubmitFailed);
    }

    // Item 1: the late job id.
    #[test]
    fn a_job_id_after_its_intent_was_resolved_is_an_orphan_but_not_after_its_own_commit() {
        let cfg = config();
        let c = ctx(&cfg, 2_000);
        let s = spec(Shape::Polling, AmbiguousPolicy::Fail);
        let intent = intent_of(&queued("luma", Shape::Polling), &c, &s);
        let watchdog_failed = ambiguous(&intent, &c, s.ambiguous_submit, None)
            .unwrap()
            .next;
        assert!(orphaned(&intent, Some(&watchdog_failed)));
        let ours = created(&intent, &c, &s, "gen-1".into(), &Value::Null)
            .unwrap()
            .next;
        assert!(
            !orphaned(&intent, Some(&ours)),
            "a duplicate of our own commit"
        );
        assert!(!orphaned(&intent, Some(&intent)));
    }

    // Item 4: a lost intent frees its lease only when the winner does not hold it.
    #[test]
    fn a_lost_intent_keeps_the_lease_a_duplicate_winner_runs_under_and_frees_it_otherwise() {
        let cfg = config();
        let c = ctx(&cfg, 2_000);
        let s = spec(Shape::Polling, AmbiguousPolicy::Fail);
        let queued = queued("runway", Shape::Polling);
        let lease = lease_at(&queued);
        // A duplicate of the same message won: its intent holds the same lease id.
        let winner = intent(&queued, &c, &s, Some(lease.clone()), "a".into())
            .unwrap()
            .next;
        assert!(!lost_lease_is_free(&lease, Some(&winner)));
        // The winner ended (its create ambiguous) and released the lease; this duplicate took
        // the same id afterwards: it is nobody's, though the ended record still names it.
        let ended = answered(&winner, &c, &s, reply(ambiguous_5xx()), None)
            .unwrap()
            .next;
        assert!(ended.status().is_terminal());
        assert_eq!(ended.hot.lease.as_ref(), Some(&lease));
        assert!(lost_lease_is_free(&lease, Some(&ended)));
        // A cancel won: the execution holds no lease.
        let mut canceled = queued.clone();
        canceled.cancel_requested = true;
        let (e, f) = precheck(&canceled, 2_000).unwrap();
        let ended = end_early(&canceled, &c, e, f).unwrap().next;
        assert!(lost_lease_is_free(&lease, Some(&ended)));
        assert!(lost_lease_is_free(&lease, None));
    }

    // Item 4: every acquisition's lease id is unique, and released by the step that ends it.
    #[test]
    fn every_acquisition_has_its_own_lease_id_and_a_throttled_retry_does_not_reuse_it() {
        let cfg = config();
        let c = ctx(&cfg, 2_000);
        let s = spec(Shape::Polling, AmbiguousPolicy::Fail);
        let queued = queued("luma", Shape::Polling);
        let first = lease_at(&queued);
        let intent = intent_of(&queued, &c, &s);
        let throttled = answered(
            &intent,
            &c,
            &s,
            reply(SubmitOutcome::Rejected {
                failure: Failure::new(ErrorClass::RateLimited, "429"),
                creation: JobCreation::NotCreated,
                raw: Value::Null,
            }),
            None,
        )
        .unwrap();
        // The retry's attempt number is the same as before (a 429 uses none), yet its lease
        // is another: it is named by the version it is taken at.
        assert_eq!(throttled.next.hot.attempt, queued.hot.attempt);
        let second = lease_at(&throttled.next);
        assert_ne!(first.id, second.id);
        assert!(
            throttled
                .effects
                .iter()
                .any(|e| matches!(e, Effect::ReleaseLease { lease } if lease.id == first.id))
        );
        // A capacity wait commits a new version too.
        let waited = capacity_wait(&queued, &c, "luma", 1).unwrap().next;
        assert_ne!(lease_at(&waited).id, first.id);
    }

    #[test]
    fn a_capacity_wait_backs_off_with_jitter_and_keeps_when_the_wait_began() {
        let cfg = config();
        let c = ctx(&cfg, 5_000);
        let queued = queued("luma", Shape::Polling);
        let once = capacity_wait(&queued, &c, "luma", 2).unwrap();
        let w = once.next.hot.waiting.clone().unwrap();
        assert_eq!(w.reason, "capacity");
        assert_eq!(w.since_ms, 5_000);
        let later = ctx(&cfg, 9_000);
        let twice = capacity_wait(&once.next, &later, "luma", 2).unwrap();
        assert_eq!(twice.next.hot.waiting.as_ref().unwrap().since_ms, 5_000);
        let (d1, d2) = (sends(&once)[0].1, sends(&twice)[0].1);
        assert!(d2 > d1, "the wait grows: {d1} then {d2}");
    }

    // Item 5's sibling before the call: a cancel or the deadline ends submit before any call.
    #[test]
    fn a_cancel_or_the_deadline_ends_submit_before_any_call_and_frees_the_attempts_lease() {
        let cfg = config();
        let mut g = queued("luma", Shape::Polling);
        assert!(precheck(&g, 2_000).is_none());
        let (event, _) = precheck(&g, g.deadline_ms).unwrap();
        assert_eq!(event, Event::DeadlineExceeded);
        g.cancel_requested = true;
        let (event, failure) = precheck(&g, 2_000).unwrap();
        assert_eq!(event, Event::Canceled);
        let step = end_early(&g, &ctx(&cfg, 2_000), event, failure).unwrap();
        assert!(
            step.effects.iter().any(
                |e| matches!(e, Effect::ReleaseLease { lease } if lease.id == lease_at(&g).id)
            )
        );
        assert_eq!(sends(&step), vec![(QueueName::Finalize, 0)]);
    }

    #[test]
    fn an_inline_result_without_outputs_is_a_partial_result() {
        let cfg = config();
        let c = ctx(&cfg, 2_000);
        let s = spec(Shape::Immediate, AmbiguousPolicy::Fail);
        let intent = intent_of(&queued("openai", Shape::Immediate), &c, &s);
        let empty = ProviderResult::default();
        let step = answered(
            &intent,
            &c,
            &s,
            reply(SubmitOutcome::Completed(empty)),
            None,
        )
        .unwrap();
        assert_eq!(
            step.failure.map(|f| f.class),
            Some(ErrorClass::PartialResult)
        );
        let one = ProviderResult {
            outputs: vec![Output {
                kind: OutputKind::Text,
                url: None,
                data: Some(json!("a poem")),
                mime_type: Some("text/plain".into()),
                width: None,
                height: None,
                duration_seconds: None,
            }],
            ..ProviderResult::default()
        };
        let step = answered(&intent, &c, &s, reply(SubmitOutcome::Completed(one)), None).unwrap();
        assert_eq!(step.event, Event::CompletedInline);
        // A small result is kept in the item (no blob); a large one is written as its blob
        // before the commit. Either way it is at hand for a finalize in the same commit.
        assert!(step.blobs.is_empty(), "a small result is kept in the item");
        assert!(step.next.hot.result.is_some() && step.result.is_some());
        let big = ProviderResult {
            outputs: vec![Output {
                kind: OutputKind::Text,
                url: None,
                data: Some(json!(
                    (0..4_000)
                        .map(|i| format!("{:x}", i * 7919 % 65_521))
                        .collect::<String>()
                )),
                mime_type: Some("text/plain".into()),
                width: None,
                height: None,
                duration_seconds: None,
            }],
            ..ProviderResult::default()
        };
        let step = answered(&intent, &c, &s, reply(SubmitOutcome::Completed(big)), None).unwrap();
        assert_eq!(step.blobs.len(), 1, "a large result is a blob");
        assert!(step.next.hot.result.is_none() && step.next.hot.result_key.is_some());
        assert!(step.result.is_some());
    }
}
