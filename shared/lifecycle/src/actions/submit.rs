//! Submit: validate, take provider capacity, commit the intent, create the job (or run it, for
//! immediate models), and schedule what comes next. Also the resolution of an intent found
//! without a job id (ambiguous submit).

use super::{call_context, load_request, result_blob, send_next, terminal_effects};
use crate::engine::{Engine, EngineError};
use crate::model::{Guard, Lease, QueueName, ResultRecord, Shape, Wait};
use crate::protocol::{Committed, Handled, Step};
use crate::provider::{AmbiguousPolicy, JobCreation, SubmitOutcome};
use crate::status::Status;
use crate::taxonomy::{ErrorClass, Failure};
use crate::transitions::Event;
use serde_json::json;

/// Runs submit for an execution in `queued`.
pub(crate) async fn run(engine: &Engine, guard: Guard) -> Result<Handled, EngineError> {
    let now = engine.now();
    if guard.cancel_requested {
        return end_early(
            engine,
            &guard,
            Event::Canceled,
            Failure::new(ErrorClass::Canceled, "canceled before submit"),
        )
        .await;
    }
    if now >= guard.deadline_ms {
        let f = Failure::new(
            ErrorClass::Timeout,
            "maximum duration reached before the provider accepted the job",
        );
        return end_early(engine, &guard, Event::DeadlineExceeded, f).await;
    }
    let driver = match engine.driver(&guard.model) {
        Ok(d) => d,
        Err(f) => return end_early(engine, &guard, Event::SubmitFailed, f).await,
    };
    let spec = driver.spec().clone();
    let request = load_request(engine, &guard).await?;
    if let Err(f) = driver.validate(&request.input) {
        return end_early(engine, &guard, Event::SubmitFailed, f).await;
    }

    // Capacity: a lease per acquisition, named by the version it is taken at — unique, since
    // every retry and throttled wait commits a new version, and deterministic, so a duplicate
    // message of the same version takes the same one. A release frees only that acquisition.
    let attempt = guard.hot.attempt + 1;
    let mut lease = None;
    if let Some(capacity) = spec.capacity {
        let l = lease_at(&guard);
        let ttl = (guard.deadline_ms - now).max(0) as u64 + engine.config.lease_margin_ms;
        if !engine
            .ports
            .limiter
            .acquire(&l.scope, &l.id, capacity, ttl)
            .await?
        {
            // Backoff with jitter: a crowd of waiting executions spreads out instead of
            // polling the limiter in lockstep.
            let base = engine.config.scaled(engine.config.capacity_wait_ms).max(1)
                << guard.hot.throttled.min(4);
            let delay = base + rand_below(base);
            let mut next = guard.advance(Event::CapacityWait, now)?;
            next.hot.throttled += 1;
            next.hot.waiting = Some(Wait {
                reason: "capacity".into(),
                since_ms: guard
                    .hot
                    .waiting
                    .as_ref()
                    .map(|w| w.since_ms)
                    .unwrap_or(now),
                until_ms: now + delay as i64,
                detail: Some(format!(
                    "{} has {capacity} inflight slots, all taken",
                    l.scope
                )),
            });
            let mut step = Step::new(next.clone(), Event::CapacityWait, "submit");
            step.effects
                .push(send_next(&next, QueueName::Submit, delay));
            step.detail = json!({"scope": l.scope, "capacity": capacity, "delay_ms": delay});
            return done(engine.commit_step(&guard, step).await?);
        }
        lease = Some(l);
    }

    // Intent: committed before the non-idempotent create call. Its watchdog message finds the
    // intent if this worker dies mid-call.
    let mut intent = guard.advance(Event::SubmitStarted, now)?;
    intent.hot.attempt = attempt;
    intent.hot.attempt_id = Some(ulid::Ulid::new().to_string().to_lowercase());
    intent.hot.lease = lease.clone();
    let watchdog = engine.config.scaled(spec.submit_timeout_ms) + engine.config.watchdog_margin_ms;
    let mut step = Step::new(intent.clone(), Event::SubmitStarted, "submit");
    step.effects
        .push(send_next(&intent, QueueName::Submit, watchdog));
    step.detail =
        json!({"attempt": attempt, "attempt_id": intent.hot.attempt_id, "watchdog_ms": watchdog});
    let intent = match engine.commit_step(&guard, step).await? {
        Committed::Won(g) => *g,
        Committed::Lost => {
            // The intent lost the race (a cancel or another worker committed first): the
            // lease taken for it is nobody's. Release it now instead of leaving it to its
            // expiry. (An error is different: the commit may have happened — a crash after
            // it — and the redelivered message takes the same lease id again.)
            if let Some(l) = &lease
                && let Err(e) = engine.ports.limiter.release(&l.scope, &l.id).await
            {
                tracing::warn!(execution_id = %guard.id, error = %e, "could not release the lease of a lost intent");
            }
            return Ok(Handled::Stale);
        }
    };

    let ctx = call_context(engine, &intent, request);
    // The create call is bounded by the bundle's submit timeout plus half the watchdog margin,
    // so its answer is committed before the watchdog (timeout + margin) finds the intent.
    // Cut short, the call may still have created the job: ambiguous.
    let limit = std::time::Duration::from_millis(
        engine.config.scaled(spec.submit_timeout_ms) + engine.config.watchdog_margin_ms / 2,
    );
    let reply = match tokio::time::timeout(limit, driver.submit(&ctx)).await {
        Ok(reply) => reply,
        Err(_) => crate::provider::Reply {
            outcome: SubmitOutcome::Rejected {
                failure: Failure::new(
                    ErrorClass::Timeout,
                    format!(
                        "the submit calls outlasted the model's submit timeout ({} ms)",
                        limit.as_millis()
                    ),
                ),
                creation: JobCreation::Unknown,
                raw: serde_json::Value::Null,
            },
            calls: vec![],
            events: vec![],
        },
    };
    // An ambiguous create that the bundle can look up at the provider: the job found is this
    // execution's job (no second one is bought); not found or unsupported, the policy decides.
    let mut reply = reply;
    let mut lookup_note = serde_json::Value::Null;
    if let SubmitOutcome::Rejected {
        creation: JobCreation::Unknown,
        failure,
        ..
    } = &reply.outcome
    {
        let found = driver.lookup(&ctx).await;
        reply.calls.extend(found.calls);
        match found.outcome {
            crate::provider::LookupOutcome::Found(job_id) => {
                lookup_note =
                    json!({"ambiguous": failure.to_string(), "lookup": "found", "job_id": job_id});
                reply.outcome = SubmitOutcome::Created {
                    job_id,
                    raw: serde_json::Value::Null,
                };
            }
            crate::provider::LookupOutcome::NotFound => {
                lookup_note = json!({"lookup": "not found"})
            }
            crate::provider::LookupOutcome::Failed(f) => {
                lookup_note = json!({"lookup": format!("failed: {f}")})
            }
            crate::provider::LookupOutcome::Unsupported => {}
        }
    }
    let now = engine.now();
    let created = match &reply.outcome {
        SubmitOutcome::Created { job_id, .. } => Some(job_id.clone()),
        _ => None,
    };
    let step = match reply.outcome {
        SubmitOutcome::Created { job_id, raw } => {
            created_step(engine, &intent, &spec, job_id, &raw, now)?
        }
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
            let mut next = intent.advance(event, now)?;
            next.hot.error = failure.clone();
            let record = ResultRecord {
                status,
                result: Some(result),
                error: failure.clone(),
                raw: serde_json::Value::Null,
            };
            let (key, bytes) = result_blob(&next, &record)?;
            next.hot.result_key = Some(key.clone());
            let mut step = Step::new(next.clone(), event, "submit");
            step.blobs.push((key, bytes));
            step.effects = terminal_effects(&next);
            step.failure = failure;
            step
        }
        SubmitOutcome::Rejected {
            failure,
            creation,
            raw,
        } => rejected(engine, &intent, &spec, failure, creation, raw, now)?,
    };
    let mut step = step;
    step.calls = reply.calls;
    crate::provider::note_events(&mut step.detail, reply.events);
    if !lookup_note.is_null() {
        if !step.detail.is_object() {
            step.detail = json!({});
        }
        step.detail["lookup"] = lookup_note;
    }
    let committed = engine.commit_step(&intent, step).await?;
    if let (Committed::Lost, Some(job_id)) = (&committed, created) {
        late_job(engine, &intent, &driver, ctx, job_id).await?;
    }
    done(committed)
}

/// The job id came back, but the intent was resolved meanwhile (the watchdog failed it as
/// ambiguous, or a cancel committed): the job exists and nobody will poll it. Cancel it at the
/// provider and record it on the execution (`explain` and the timeline show it), write-once
/// per attempt so a redelivery records it once.
async fn late_job(
    engine: &Engine,
    intent: &Guard,
    driver: &std::sync::Arc<dyn crate::provider::ModelDriver>,
    mut ctx: crate::provider::CallContext,
    job_id: String,
) -> Result<(), EngineError> {
    let current = engine.ports.guards.get(&intent.id).await?;
    let moved_on = current.as_ref().is_some_and(|g| {
        g.version() > intent.version()
            && (g.hot.attempt_id != intent.hot.attempt_id || g.hot.job_id.is_none())
    });
    if !moved_on {
        return Ok(());
    }
    ctx.job_id = Some(job_id.clone());
    let reply = driver.cancel(&ctx).await;
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

/// The step that records the job the provider created and schedules its first poll.
fn created_step(
    engine: &Engine,
    intent: &Guard,
    spec: &crate::provider::ModelSpec,
    job_id: String,
    raw: &serde_json::Value,
    now: i64,
) -> Result<Step, EngineError> {
    let mut next = intent.advance(Event::JobCreated, now)?;
    next.hot.job_id = Some(job_id.clone());
    next.hot.provider_status = raw
        .get("status")
        .and_then(|s| s.as_str())
        .map(str::to_string);
    let delay = match spec.shape {
        Shape::Callback if !intent.pending_callbacks().is_empty() => 0,
        Shape::Callback => engine.config.scaled(spec.safety_poll_ms),
        _ => engine.config.scaled(spec.poll.delay_ms(0)),
    };
    let mut step = Step::new(next.clone(), Event::JobCreated, "submit");
    step.effects.push(send_next(&next, QueueName::Poll, delay));
    step.detail = json!({"job_id": job_id, "next_poll_ms": delay});
    Ok(step)
}

/// The step after a refused create call.
fn rejected(
    engine: &Engine,
    intent: &Guard,
    spec: &crate::provider::ModelSpec,
    failure: Failure,
    creation: JobCreation,
    raw: serde_json::Value,
    now: i64,
) -> Result<Step, EngineError> {
    if creation == JobCreation::Unknown {
        return ambiguous_step(engine, intent, spec.ambiguous_submit, Some(failure), now);
    }
    let attempt = intent.hot.attempt;
    // Throttling and an open breaker mean the provider did nothing: wait and retry until the
    // deadline without using up an attempt.
    let waiting_only = matches!(
        failure.class,
        ErrorClass::RateLimited | ErrorClass::ProviderUnavailable
    );
    let backoff_step = if waiting_only {
        intent.hot.throttled
    } else {
        attempt.saturating_sub(1)
    };
    let delay = engine.config.backoff_ms(
        engine.config.submit_retry_base_ms,
        engine.config.submit_retry_max_ms,
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
            step.effects.push(crate::model::Effect::ReleaseLease {
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
    let (key, bytes) = result_blob(&next, &record)?;
    next.hot.result_key = Some(key.clone());
    let mut step = Step::new(next.clone(), Event::SubmitFailed, "submit");
    step.blobs.push((key, bytes));
    step.effects = terminal_effects(&next);
    step.detail = json!({"attempt": attempt, "retries_exhausted": failure.class.is_retryable()});
    step.failure = Some(failure);
    Ok(step)
}

/// Runs for an execution found in `submitting` by its own (watchdog or redelivered) message:
/// the create call's fate is unknown.
pub(crate) async fn resolve_ambiguous(
    engine: &Engine,
    guard: Guard,
) -> Result<Handled, EngineError> {
    let driver = engine.driver(&guard.model).ok();
    let policy = driver
        .as_ref()
        .map(|d| d.spec().ambiguous_submit)
        .unwrap_or_default();
    // The bundle may find the job at the provider by the reference it echoes.
    if let Some(driver) = &driver
        && let Some(request) = engine.request(&guard.id).await?
    {
        let ctx = call_context(engine, &guard, request);
        let found = driver.lookup(&ctx).await;
        if let crate::provider::LookupOutcome::Found(job_id) = found.outcome {
            let spec = driver.spec().clone();
            let mut step = created_step(
                engine,
                &guard,
                &spec,
                job_id.clone(),
                &serde_json::Value::Null,
                engine.now(),
            )?;
            step.calls = found.calls;
            step.detail["lookup"] = json!({"ambiguous": "submit intent found without a job id", "lookup": "found", "job_id": job_id});
            return done(engine.commit_step(&guard, step).await?);
        }
    }
    let step = ambiguous_step(engine, &guard, policy, None, engine.now())?;
    done(engine.commit_step(&guard, step).await?)
}

fn ambiguous_step(
    engine: &Engine,
    intent: &Guard,
    policy: AmbiguousPolicy,
    cause: Option<Failure>,
    now: i64,
) -> Result<Step, EngineError> {
    let detail = cause
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "submit intent found without a job id (worker lost mid-call)".into());
    if policy == AmbiguousPolicy::Resubmit && now < intent.deadline_ms {
        let mut next = intent.advance(Event::SubmitRetry, now)?;
        next.hot.lease = None;
        let mut step = Step::new(next.clone(), Event::SubmitRetry, "submit");
        if let Some(lease) = &intent.hot.lease {
            step.effects.push(crate::model::Effect::ReleaseLease {
                lease: lease.clone(),
            });
        }
        step.effects.push(send_next(&next, QueueName::Submit, 0));
        step.detail = json!({"ambiguous": true, "policy": "resubmit", "cause": detail});
        step.failure = cause;
        return Ok(step);
    }
    let failure = Failure::new(ErrorClass::SubmitAmbiguous, detail);
    let mut next = intent.advance(Event::SubmitAmbiguous, now)?;
    next.hot.error = Some(failure.clone());
    let mut step = Step::new(next.clone(), Event::SubmitAmbiguous, "submit");
    step.effects = terminal_effects(&next);
    step.detail = json!({"ambiguous": true, "policy": "fail", "attempt_id": intent.hot.attempt_id});
    step.failure = Some(failure);
    let _ = engine;
    Ok(step)
}

/// Ends an execution before any provider call (canceled, deadline, invalid, unknown model).
async fn end_early(
    engine: &Engine,
    guard: &Guard,
    event: Event,
    failure: Failure,
) -> Result<Handled, EngineError> {
    let mut next = guard.advance(event, engine.now())?;
    next.hot.error = Some(failure.clone());
    let mut step = Step::new(next.clone(), event, "submit");
    // A lease this attempt may have taken before a crash or a failed commit (the chaos suite
    // found one held after the execution was canceled before its retry): its id is
    // deterministic, and releasing a lease nobody holds changes nothing.
    step.effects.push(crate::model::Effect::ReleaseLease {
        lease: lease_at(guard),
    });
    step.effects.extend(terminal_effects(&next));
    step.failure = Some(failure);
    done(engine.commit_step(guard, step).await?)
}

/// The lease an acquisition at `guard`'s version holds.
fn lease_at(guard: &Guard) -> Lease {
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

pub(crate) fn done(c: Committed) -> Result<Handled, EngineError> {
    Ok(match c {
        Committed::Won(_) => Handled::Done,
        Committed::Lost => Handled::Stale,
    })
}

fn rand_below(n: u64) -> u64 {
    use rand::Rng;
    rand::rng().random_range(0..n.max(1))
}
