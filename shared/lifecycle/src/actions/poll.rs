//! Poll: consume stored callbacks (about this execution's job only), otherwise ask the
//! provider; at the deadline or a cancel, one last look decides (what the provider finished
//! is delivered) before the job is canceled; then schedule the next poll with backoff, or
//! complete.

use super::submit::done;
use super::{call_context, load_request, result_blob, send_next, terminal_effects};
use crate::blobs;
use crate::engine::{Engine, EngineError};
use crate::keys;
use crate::model::{Guard, QueueName, ResultRecord, Shape, Wait};
use crate::protocol::{Handled, Step};
use crate::provider::{CallContext, CallbackVerdict, ModelDriver, PollOutcome};
use crate::status::Status;
use crate::taxonomy::{ErrorClass, Failure};
use crate::transitions::Event;
use serde_json::{Value, json};
use std::sync::Arc;

/// Runs poll for an execution in `submitted` or `running`.
pub(crate) async fn run(engine: &Engine, guard: Guard) -> Result<Handled, EngineError> {
    let driver = match engine.driver(&guard.model) {
        Ok(d) => d,
        Err(f) => {
            let step = terminal(
                engine,
                &guard,
                Event::JobFailed,
                Status::Failed,
                None,
                Some(f),
                Value::Null,
            )?;
            return done(engine.commit_step(&guard, step).await?);
        }
    };
    let request = load_request(engine, &guard).await?;
    let ctx = call_context(engine, &guard, request);
    let now = engine.now();

    // Callbacks first: what the provider reported before the deadline or the cancel is
    // delivered, and a verified callback can spare a provider call.
    let (from_callbacks, consumed, needs_poll) =
        consume_callbacks(engine, &guard, &ctx, &driver).await?;
    let mut calls = Vec::new();
    let mut events = Vec::new();
    let mut polled = false;
    let trusted = from_callbacks.filter(|o| is_terminal(o) || !needs_poll);
    let ending = guard.cancel_requested || now >= guard.deadline_ms;
    let outcome = match trusted {
        Some(o) if is_terminal(&o) || !ending => o,
        _ => {
            // At the deadline or a cancel, one last look: a job that finished within the
            // last poll interval is delivered, not discarded.
            let reply = driver.poll(&ctx).await;
            calls = reply.calls;
            events = reply.events;
            polled = true;
            reply.outcome
        }
    };
    if ending && !is_terminal(&outcome) {
        let (event, status, failure) = if guard.cancel_requested {
            (
                Event::Canceled,
                Status::Canceled,
                Failure::new(ErrorClass::Canceled, "canceled on request"),
            )
        } else {
            let f = Failure::new(
                ErrorClass::Timeout,
                "maximum duration exceeded; provider cancel requested",
            );
            (Event::DeadlineExceeded, Status::TimedOut, f)
        };
        let reply = driver.cancel(&ctx).await;
        let mut step = terminal(
            engine,
            &guard,
            event,
            status,
            None,
            Some(failure),
            Value::Null,
        )?;
        step.detail = json!({
            "provider_cancel": match &reply.outcome { Ok(()) => "accepted".to_string(), Err(f) => f.to_string() },
            "final_poll": polled,
        });
        step.next
            .hot
            .consumed_callbacks
            .extend(consumed.iter().cloned());
        calls.extend(reply.calls);
        step.calls = calls;
        events.extend(reply.events);
        crate::provider::note_events(&mut step.detail, events);
        return done(engine.commit_step(&guard, step).await?);
    }
    let now = engine.now();
    let spec = driver.spec();
    let mut step = match outcome {
        PollOutcome::Pending {
            provider_status,
            progress,
            started,
        } => {
            let event = if started && guard.status() == Status::Submitted {
                Event::Started
            } else {
                Event::StillPending
            };
            let mut next = guard.advance(event, now)?;
            if polled {
                next.hot.poll_count += 1;
            }
            next.hot.provider_status = Some(provider_status.clone());
            next.hot.progress = progress.or(guard.hot.progress);
            let delay = next_poll_delay(engine, spec.shape, spec, next.hot.poll_count);
            let mut step = Step::new(next.clone(), event, "poll");
            step.effects.push(send_next(&next, QueueName::Poll, delay));
            step.detail = json!({"provider_status": provider_status, "progress": progress, "next_poll_ms": delay, "from_callback": !polled});
            step
        }
        PollOutcome::Succeeded(result) => {
            if result.outputs.is_empty() {
                let f = Failure::new(
                    ErrorClass::PartialResult,
                    "the provider reported success with no output",
                );
                terminal(
                    engine,
                    &guard,
                    Event::JobFailed,
                    Status::Failed,
                    Some(result),
                    Some(f),
                    Value::Null,
                )?
            } else {
                terminal(
                    engine,
                    &guard,
                    Event::JobSucceeded,
                    Status::Succeeded,
                    Some(result),
                    None,
                    Value::Null,
                )?
            }
        }
        PollOutcome::Failed { failure, raw } => terminal(
            engine,
            &guard,
            Event::JobFailed,
            Status::Failed,
            None,
            Some(failure),
            raw,
        )?,
        PollOutcome::Canceled { raw } => {
            let f = Failure::new(
                ErrorClass::Canceled,
                "the provider reports the job canceled",
            );
            terminal(
                engine,
                &guard,
                Event::Canceled,
                Status::Canceled,
                None,
                Some(f),
                raw,
            )?
        }
        PollOutcome::CallFailed(failure) => {
            if failure.class.is_retryable() {
                let mut next = guard.advance(Event::StillPending, now)?;
                next.hot.poll_count += 1;
                let base = next_poll_delay(engine, spec.shape, spec, next.hot.poll_count);
                let delay = base.max(engine.config.scaled(failure.retry_after_ms.unwrap_or(0)));
                next.hot.waiting = Some(Wait {
                    reason: "retry".into(),
                    since_ms: now,
                    until_ms: now + delay as i64,
                    detail: Some(failure.to_string()),
                });
                let mut step = Step::new(next.clone(), Event::StillPending, "poll");
                step.effects.push(send_next(&next, QueueName::Poll, delay));
                step.detail = json!({"poll_error": true, "next_poll_ms": delay});
                step.failure = Some(failure);
                step
            } else {
                terminal(
                    engine,
                    &guard,
                    Event::JobFailed,
                    Status::Failed,
                    None,
                    Some(failure),
                    Value::Null,
                )?
            }
        }
    };
    step.next
        .hot
        .consumed_callbacks
        .extend(consumed.iter().cloned());
    if !consumed.is_empty() {
        if let Value::Object(m) = &mut step.detail {
            m.insert("callbacks_consumed".into(), json!(consumed));
        } else {
            step.detail = json!({"callbacks_consumed": consumed});
        }
    }
    step.calls.extend(calls);
    crate::provider::note_events(&mut step.detail, events);
    done(engine.commit_step(&guard, step).await?)
}

fn is_terminal(o: &PollOutcome) -> bool {
    !matches!(o, PollOutcome::Pending { .. } | PollOutcome::CallFailed(_))
}

fn next_poll_delay(
    engine: &Engine,
    shape: Shape,
    spec: &crate::provider::ModelSpec,
    polls: u32,
) -> u64 {
    match shape {
        Shape::Callback => engine.config.scaled(spec.safety_poll_ms),
        _ => engine.config.scaled(spec.poll.delay_ms(polls)),
    }
}

/// Reads and interprets every pending callback, oldest first. Returns the last outcome (a
/// terminal one wins), the ids consumed, and whether the provider must still be asked.
async fn consume_callbacks(
    engine: &Engine,
    guard: &Guard,
    ctx: &CallContext,
    driver: &Arc<dyn ModelDriver>,
) -> Result<(Option<PollOutcome>, Vec<String>, bool), EngineError> {
    let mut outcome: Option<PollOutcome> = None;
    let mut consumed = Vec::new();
    let mut needs_poll = false;
    for cb in guard.pending_callbacks() {
        let payload: Option<Value> =
            blobs::get_json(engine.ports.blobs.as_ref(), &keys::callback(&guard.id, &cb)).await?;
        consumed.push(cb);
        let Some(payload) = payload else { continue };
        // A callback stored before the job id was committed is checked now: only this
        // execution's job may decide its outcome.
        let about = driver.callback_job_id(&payload);
        if about.is_none() || about != guard.hot.job_id {
            let reason = format!(
                "callback about provider job {}, not this execution's job {}",
                about.as_deref().unwrap_or("(none)"),
                guard.hot.job_id.as_deref().unwrap_or("(none)")
            );
            engine.note_refused_callback(guard, &reason).await;
            continue;
        }
        match driver.interpret_callback(ctx, &payload) {
            CallbackVerdict::Outcome(o) => {
                let terminal = is_terminal(&o);
                outcome = Some(o);
                if terminal {
                    break;
                }
            }
            CallbackVerdict::NeedsPoll => needs_poll = true,
        }
    }
    if outcome.is_none() {
        needs_poll = true;
    }
    Ok((outcome, consumed, needs_poll))
}

/// A step into a terminal status, with its result blob.
fn terminal(
    engine: &Engine,
    guard: &Guard,
    event: Event,
    status: Status,
    result: Option<crate::model::ProviderResult>,
    failure: Option<Failure>,
    raw: Value,
) -> Result<Step, EngineError> {
    let now = engine.now();
    let mut next = guard.advance(event, now)?;
    next.hot.error = failure.clone();
    let record = ResultRecord {
        status,
        result,
        error: failure.clone(),
        raw,
    };
    let (key, bytes) = result_blob(&next, &record)?;
    next.hot.result_key = Some(key.clone());
    let mut step = Step::new(next.clone(), event, "poll");
    step.blobs.push((key, bytes));
    step.effects = terminal_effects(&next);
    step.failure = failure;
    Ok(step)
}
