//! Poll: consume stored callbacks (about this execution's job only), otherwise ask the
//! provider; at the deadline or a cancel, one last look decides (what the provider finished
//! is delivered) before the job is canceled; then schedule the next poll with backoff, or
//! complete.
//!
//! The decisions come first (pure: guard, callbacks, answers, clock → [`Step`]), the runner
//! after them.

use super::{Ctx, call_context, commit, keep_result, load_request, send_next, terminal_effects};
use crate::blobs;
use crate::engine::{Engine, EngineError};
use crate::keys;
use crate::model::{CallRecord, Guard, ProviderResult, QueueName, ResultRecord, Shape, Wait};
use crate::protocol::{Handled, Step};
use crate::provider::{CallContext, CallbackVerdict, ModelDriver, ModelSpec, PollOutcome, Reply};
use crate::status::Status;
use crate::taxonomy::{ErrorClass, Failure};
use crate::transitions::Event;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------------

/// What the stored callbacks say, read oldest first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Callbacks {
    /// The last outcome they report (a terminal one wins and ends the reading).
    pub outcome: Option<PollOutcome>,
    /// The callback ids read (each is consumed, used or refused).
    pub consumed: Vec<String>,
    /// Whether the provider must still be asked (an unsigned nudge, or nothing usable).
    pub needs_poll: bool,
    /// Why each refused callback was refused (about another job, or no job).
    pub refused: Vec<String>,
}

/// Reads the stored callbacks (`(id, payload)`, oldest first; a payload that cannot be found
/// is consumed as nothing). A callback stored before the job id was committed is checked now:
/// only this execution's job may decide its outcome.
pub(crate) fn read_callbacks(
    guard: &Guard,
    driver: &dyn ModelDriver,
    call: &CallContext,
    stored: Vec<(String, Option<Value>)>,
) -> Callbacks {
    let mut read = Callbacks::default();
    for (id, payload) in stored {
        read.consumed.push(id);
        let Some(payload) = payload else { continue };
        let about = driver.callback_job_id(&payload);
        if about.is_none() || about != guard.hot.job_id {
            read.refused.push(format!(
                "callback about provider job {}, not this execution's job {}",
                about.as_deref().unwrap_or("(none)"),
                guard.hot.job_id.as_deref().unwrap_or("(none)")
            ));
            continue;
        }
        match driver.interpret_callback(call, &payload) {
            CallbackVerdict::Outcome(o) => {
                let terminal = is_terminal(&o);
                read.outcome = Some(o);
                if terminal {
                    break;
                }
            }
            CallbackVerdict::NeedsPoll => read.needs_poll = true,
        }
    }
    if read.outcome.is_none() {
        read.needs_poll = true;
    }
    read
}

/// Why this poll ends the execution whatever the provider says, unless the provider has
/// finished: a cancel requested, or the deadline reached.
pub(crate) fn ending(guard: &Guard, now: i64) -> Option<(Event, Status, Failure)> {
    if guard.cancel_requested {
        Some((
            Event::Canceled,
            Status::Canceled,
            Failure::new(ErrorClass::Canceled, "canceled on request"),
        ))
    } else if now >= guard.deadline_ms {
        Some((
            Event::DeadlineExceeded,
            Status::TimedOut,
            Failure::new(
                ErrorClass::Timeout,
                "maximum duration exceeded; provider cancel requested",
            ),
        ))
    } else {
        None
    }
}

/// How many more looks a job gets when the last look at the deadline or a cancel could not
/// reach the provider (a 5xx, a timeout, a failed copy of the output): a job the provider
/// finished in time is not thrown away because its status call failed once at the deadline.
pub const FINAL_LOOK_RETRIES: u32 = 3;

/// Whether an ending execution looks again instead of ending: its last look failed with a
/// retryable class and it has looks left.
pub(crate) fn looks_again(guard: &Guard, outcome: &PollOutcome) -> bool {
    matches!(outcome, PollOutcome::CallFailed(f) if f.class.is_retryable())
        && guard.hot.final_looks < FINAL_LOOK_RETRIES
}

/// The callbacks' outcome when it can be trusted without asking the provider: a terminal one
/// always (what the provider reported before the deadline or the cancel is delivered), a
/// pending one only from a signed callback and when nothing is ending (at the deadline or a
/// cancel, one last look decides). `None`: ask the provider.
pub(crate) fn trusted(callbacks: &Callbacks, ending: bool) -> Option<PollOutcome> {
    let o = callbacks.outcome.as_ref()?;
    if is_terminal(o) || (!callbacks.needs_poll && !ending) {
        Some(o.clone())
    } else {
        None
    }
}

/// The provider's answers after the look (or the callbacks', `polled` false).
pub(crate) struct Looked {
    /// What the job's state is.
    pub outcome: PollOutcome,
    /// Whether the provider was asked.
    pub polled: bool,
    /// The calls made.
    pub calls: Vec<CallRecord>,
    /// Events the steps published.
    pub events: Vec<Value>,
}

/// The step that ends a job still running at the deadline or the cancel, after the provider
/// was asked to cancel it.
pub(crate) fn ended(
    guard: &Guard,
    ctx: &Ctx,
    end: (Event, Status, Failure),
    cancel: Reply<Result<(), Failure>>,
    looked: Looked,
    consumed: Vec<String>,
) -> Result<Step, EngineError> {
    let (event, status, failure) = end;
    let mut step = terminal(guard, ctx, event, status, None, Some(failure), Value::Null)?;
    step.detail = json!({
        "provider_cancel": match &cancel.outcome { Ok(()) => "accepted".to_string(), Err(f) => f.to_string() },
        "final_poll": looked.polled,
    });
    step.next.hot.consumed_callbacks.extend(consumed);
    step.calls = looked.calls;
    step.calls.extend(cancel.calls);
    let mut events = looked.events;
    events.extend(cancel.events);
    crate::provider::note_events(&mut step.detail, events);
    Ok(step)
}

/// The step for what the look found: the next poll (with backoff) while pending or after a
/// failed status call, the terminal status otherwise.
pub(crate) fn answered(
    guard: &Guard,
    ctx: &Ctx,
    spec: &ModelSpec,
    looked: Looked,
    consumed: Vec<String>,
) -> Result<Step, EngineError> {
    let now = ctx.now;
    let polled = looked.polled;
    let mut step = match looked.outcome {
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
            let delay = next_poll_delay(ctx, spec, next.hot.poll_count);
            let mut step = Step::new(next.clone(), event, "poll");
            step.effects.push(send_next(&next, QueueName::Poll, delay));
            step.detail = json!({"provider_status": provider_status, "progress": progress, "next_poll_ms": delay, "from_callback": !polled});
            step
        }
        PollOutcome::Succeeded(result) if result.outputs.is_empty() => {
            let f = Failure::new(
                ErrorClass::PartialResult,
                "the provider reported success with no output",
            );
            let (e, s) = (Event::JobFailed, Status::Failed);
            terminal(guard, ctx, e, s, Some(result), Some(f), Value::Null)?
        }
        PollOutcome::Succeeded(result) => {
            let (e, s) = (Event::JobSucceeded, Status::Succeeded);
            terminal(guard, ctx, e, s, Some(result), None, Value::Null)?
        }
        PollOutcome::Failed { failure, raw } => {
            let (e, s) = (Event::JobFailed, Status::Failed);
            terminal(guard, ctx, e, s, None, Some(failure), raw)?
        }
        PollOutcome::Canceled { raw } => {
            // Past the deadline with no cancel asked for, the job was canceled because of the
            // deadline (the cancel this lifecycle sent at it, whose callback can arrive before
            // that poll's own commit): the execution timed out, it was not canceled.
            let (e, s, f) = match ending(guard, now) {
                Some((Event::DeadlineExceeded, status, f)) => (Event::DeadlineExceeded, status, f),
                _ => (
                    Event::Canceled,
                    Status::Canceled,
                    Failure::new(
                        ErrorClass::Canceled,
                        "the provider reports the job canceled",
                    ),
                ),
            };
            terminal(guard, ctx, e, s, None, Some(f), raw)?
        }
        PollOutcome::CallFailed(failure) if failure.class.is_retryable() => {
            let mut next = guard.advance(Event::StillPending, now)?;
            next.hot.poll_count += 1;
            let ending = ending(guard, now).is_some();
            let base = if ending {
                // The look at the deadline or the cancel failed: look again soon.
                next.hot.final_looks += 1;
                ctx.config
                    .scaled(spec.poll.delay_ms(next.hot.final_looks - 1))
            } else {
                next_poll_delay(ctx, spec, next.hot.poll_count)
            };
            let delay = base.max(ctx.config.scaled(failure.retry_after_ms.unwrap_or(0)));
            next.hot.waiting = Some(Wait {
                reason: "retry".into(),
                since_ms: now,
                until_ms: now + delay as i64,
                detail: Some(failure.to_string()),
            });
            let mut step = Step::new(next.clone(), Event::StillPending, "poll");
            step.effects.push(send_next(&next, QueueName::Poll, delay));
            step.detail = json!({"poll_error": true, "next_poll_ms": delay});
            if ending {
                step.detail["final_look_retry"] = json!(next.hot.final_looks);
            }
            step.failure = Some(failure);
            step
        }
        PollOutcome::CallFailed(failure) => {
            let (e, s) = (Event::JobFailed, Status::Failed);
            terminal(guard, ctx, e, s, None, Some(failure), Value::Null)?
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
    step.calls.extend(looked.calls);
    crate::provider::note_events(&mut step.detail, looked.events);
    Ok(step)
}

/// Whether an outcome ends the job.
pub(crate) fn is_terminal(o: &PollOutcome) -> bool {
    !matches!(o, PollOutcome::Pending { .. } | PollOutcome::CallFailed(_))
}

fn next_poll_delay(ctx: &Ctx, spec: &ModelSpec, polls: u32) -> u64 {
    match spec.shape {
        Shape::Callback => ctx.config.scaled(spec.safety_poll_ms),
        _ => ctx.config.scaled(spec.poll.delay_ms(polls)),
    }
}

/// A step into a terminal status, with its result blob.
pub(crate) fn terminal(
    guard: &Guard,
    ctx: &Ctx,
    event: Event,
    status: Status,
    result: Option<ProviderResult>,
    failure: Option<Failure>,
    raw: Value,
) -> Result<Step, EngineError> {
    let mut next = guard.advance(event, ctx.now)?;
    next.hot.error = failure.clone();
    let record = ResultRecord {
        status,
        result,
        error: failure.clone(),
        raw,
    };
    let mut step = Step::new(next.clone(), event, "poll");
    step.effects = terminal_effects(&next);
    step.failure = failure;
    keep_result(&mut step, record)?;
    Ok(step)
}

// ---------------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------------

/// Runs poll for an execution in `submitted` or `running`.
pub(crate) async fn run(engine: &Engine, guard: Guard) -> Result<Handled, EngineError> {
    let ctx = Ctx::of(engine);
    let driver = match engine.driver(&guard.model) {
        Ok(d) => d,
        Err(f) => {
            let (e, s) = (Event::JobFailed, Status::Failed);
            let step = terminal(&guard, &ctx, e, s, None, Some(f), Value::Null)?;
            return commit(engine, &guard, step).await;
        }
    };
    let request = load_request(engine, &guard).await?;
    let mut call = call_context(engine, &guard, request);
    call.final_look = ending(&guard, ctx.now).is_some();

    let mut stored = Vec::new();
    for id in guard.pending_callbacks() {
        let body = match guard.callback_bodies.get(&id) {
            // Kept beside the guard: no blob read.
            Some(packed) => Some(blobs::decode(packed)?),
            None => {
                let key = keys::callback(&guard.id, &id);
                blobs::get_json(engine.ports.blobs.as_ref(), &key).await?
            }
        };
        stored.push((id, body));
    }
    let callbacks = read_callbacks(&guard, driver.as_ref(), &call, stored);
    for reason in &callbacks.refused {
        engine.note_refused_callback(&guard, reason).await;
    }
    let end = ending(&guard, ctx.now);
    let looked = match trusted(&callbacks, end.is_some()) {
        Some(PollOutcome::Succeeded(result)) => {
            // What the callback carried inline goes to the blob store before the commit (the
            // poll path's reads do the same in the driver); a failure to store it leaves the
            // callback unconsumed and the message retried, since a provider with no status
            // call (Deepgram) could not give the result again.
            let result = driver
                .store_outputs(&call, result)
                .await
                .map_err(|f| EngineError::Store(crate::ports::StoreError::unavailable(f)))?;
            Looked {
                outcome: PollOutcome::Succeeded(result),
                polled: false,
                calls: vec![],
                events: vec![],
            }
        }
        Some(outcome) => Looked {
            outcome,
            polled: false,
            calls: vec![],
            events: vec![],
        },
        None => {
            let reply = driver.poll(&call).await;
            Looked {
                outcome: reply.outcome,
                polled: true,
                calls: reply.calls,
                events: reply.events,
            }
        }
    };
    let consumed = callbacks.consumed;
    let step = match end {
        Some(end) if !is_terminal(&looked.outcome) && !looks_again(&guard, &looked.outcome) => {
            let cancel = driver.cancel(&call).await;
            ended(&guard, &Ctx::of(engine), end, cancel, looked, consumed)?
        }
        _ => answered(&guard, &Ctx::of(engine), driver.spec(), looked, consumed)?,
    };
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
    use super::super::testing::{after, config, ctx, queued};
    use super::*;
    use crate::model::{Cost, Effect, Output, OutputKind};
    use crate::provider::{LookupOutcome, PollPolicy, SubmitOutcome, VerifiedCallback};
    use async_trait::async_trait;

    /// A driver that only interprets callbacks, the way Replicate's adapter does: the job is
    /// the payload's `id`, its state the payload's `status`. Unsigned (`signed: false`, as
    /// Luma's): every callback is only a nudge. The decisions never make a provider call.
    struct Interpreter {
        spec: ModelSpec,
        signed: bool,
    }

    #[async_trait]
    impl ModelDriver for Interpreter {
        fn spec(&self) -> &ModelSpec {
            &self.spec
        }
        fn validate(&self, input: &Value) -> Result<Value, Failure> {
            Ok(input.clone())
        }
        async fn submit(&self, _: &CallContext) -> Reply<SubmitOutcome> {
            unreachable!("decisions make no calls")
        }
        async fn poll(&self, _: &CallContext) -> Reply<PollOutcome> {
            unreachable!("decisions make no calls")
        }
        async fn cancel(&self, _: &CallContext) -> Reply<Result<(), Failure>> {
            unreachable!("decisions make no calls")
        }
        async fn lookup(&self, _: &CallContext) -> Reply<LookupOutcome> {
            unreachable!("decisions make no calls")
        }
        fn verify_callback(
            &self,
            _: &[(String, String)],
            _: &[u8],
            _: i64,
        ) -> Result<VerifiedCallback, Failure> {
            unreachable!("decisions verify nothing")
        }
        fn callback_job_id(&self, payload: &Value) -> Option<String> {
            payload.get("id")?.as_str().map(str::to_string)
        }
        fn interpret_callback(&self, _: &CallContext, payload: &Value) -> CallbackVerdict {
            if !self.signed {
                return CallbackVerdict::NeedsPoll;
            }
            CallbackVerdict::Outcome(match payload["status"].as_str() {
                Some("succeeded") => PollOutcome::Succeeded(image()),
                _ => pending(),
            })
        }
        fn cost(&self, _: &ProviderResult) -> Cost {
            Cost::default()
        }
    }

    fn spec(shape: Shape) -> ModelSpec {
        ModelSpec {
            job_retries: 0,
            id: "replicate/flux".into(),
            provider: "replicate".into(),
            shape,
            description: String::new(),
            input_schema: json!({}),
            max_duration_ms: 60_000,
            max_submit_attempts: 3,
            submit_timeout_ms: 20_000,
            poll: PollPolicy {
                initial_delay_ms: 1_000,
                max_delay_ms: 8_000,
                multiplier: 2.0,
            },
            safety_poll_ms: 30_000,
            capacity: None,
            ambiguous_submit: Default::default(),
        }
    }

    fn image() -> ProviderResult {
        ProviderResult {
            outputs: vec![Output {
                kind: OutputKind::Image,
                url: Some("https://replicate.delivery/out.png".into()),
                data: None,
                mime_type: Some("image/png".into()),
                width: Some(1024),
                height: Some(1024),
                duration_seconds: None,
            }],
            ..ProviderResult::default()
        }
    }

    fn pending() -> PollOutcome {
        PollOutcome::Pending {
            provider_status: "processing".into(),
            progress: None,
            started: true,
        }
    }

    /// An execution whose job `job` was created, in `running`.
    fn running(job: &str) -> Guard {
        let mut g = after(
            &queued("replicate", Shape::Callback),
            &[Event::SubmitStarted, Event::JobCreated, Event::Started],
        );
        g.hot.job_id = Some(job.into());
        g
    }

    fn call(g: &Guard) -> CallContext {
        CallContext {
            final_look: false,
            request: crate::model::ExecutionRequest {
                retries: None,
                fallbacks: Default::default(),
                id: g.id.clone(),
                tenant: g.tenant.clone(),
                model: g.model.clone(),
                input: json!({}),
                webhook_url: None,
                idempotency_key: None,
                created_at_ms: g.created_at_ms,
                max_duration_ms: 60_000,
            },
            job_id: g.hot.job_id.clone(),
            attempt: 1,
            callback_url: String::new(),
            deadline_ms: g.deadline_ms,
        }
    }

    fn signed() -> Interpreter {
        Interpreter {
            spec: spec(Shape::Callback),
            signed: true,
        }
    }

    fn stored(items: &[(&str, Value)]) -> Vec<(String, Option<Value>)> {
        items
            .iter()
            .map(|(id, v)| (id.to_string(), Some(v.clone())))
            .collect()
    }

    // Item 2: a verified callback belongs to its job, or it is refused.
    #[test]
    fn a_genuine_callback_of_another_job_is_refused_and_never_decides_the_outcome() {
        let g = running("job-ours");
        let read = read_callbacks(
            &g,
            &signed(),
            &call(&g),
            stored(&[("cb1", json!({"id": "job-theirs", "status": "succeeded"}))]),
        );
        assert!(read.outcome.is_none());
        assert!(read.needs_poll, "nothing usable: the provider is asked");
        assert_eq!(read.consumed, vec!["cb1"], "consumed, so never read again");
        assert_eq!(read.refused.len(), 1);
        assert!(
            read.refused[0].contains("job-theirs"),
            "{}",
            read.refused[0]
        );
        // A body that names no job at all is refused the same way.
        let read = read_callbacks(
            &g,
            &signed(),
            &call(&g),
            stored(&[("cb2", json!({"test": 1}))]),
        );
        assert_eq!(read.refused.len(), 1);
    }

    #[test]
    fn a_callback_stored_before_the_job_id_commit_is_checked_when_consumed() {
        let g = running("job-ours");
        let read = read_callbacks(
            &g,
            &signed(),
            &call(&g),
            stored(&[
                (
                    "early-foreign",
                    json!({"id": "job-theirs", "status": "succeeded"}),
                ),
                ("ours", json!({"id": "job-ours", "status": "succeeded"})),
            ]),
        );
        assert_eq!(read.refused.len(), 1);
        assert!(matches!(read.outcome, Some(PollOutcome::Succeeded(_))));
        let looked = Looked {
            outcome: trusted(&read, false).expect("a signed terminal callback is trusted"),
            polled: false,
            calls: vec![],
            events: vec![],
        };
        let cfg = config();
        let step = answered(
            &g,
            &ctx(&cfg, 5_000),
            &spec(Shape::Callback),
            looked,
            read.consumed,
        )
        .unwrap();
        assert_eq!(step.event, Event::JobSucceeded);
        assert_eq!(
            step.next.hot.consumed_callbacks,
            vec!["early-foreign", "ours"]
        );
    }

    #[test]
    fn an_unsigned_callback_is_only_a_nudge() {
        let g = running("job-ours");
        let unsigned = Interpreter {
            spec: spec(Shape::Callback),
            signed: false,
        };
        let read = read_callbacks(
            &g,
            &unsigned,
            &call(&g),
            stored(&[("cb", json!({"id": "job-ours", "status": "succeeded"}))]),
        );
        assert!(read.needs_poll);
        assert!(trusted(&read, false).is_none(), "the provider is asked");
    }

    // Item 5: what the provider finished before the deadline or the cancel is delivered.
    #[test]
    fn a_success_stored_before_the_deadline_is_delivered_when_handled_after_it() {
        let g = running("job-ours");
        let after_deadline = g.deadline_ms + 1;
        let end = ending(&g, after_deadline);
        assert!(matches!(
            end,
            Some((Event::DeadlineExceeded, Status::TimedOut, _))
        ));
        let read = read_callbacks(
            &g,
            &signed(),
            &call(&g),
            stored(&[("cb", json!({"id": "job-ours", "status": "succeeded"}))]),
        );
        let outcome = trusted(&read, end.is_some()).expect("a terminal callback wins the deadline");
        assert!(is_terminal(&outcome));
        // So the runner takes the answered path, not the ended one.
        let cfg = config();
        let looked = Looked {
            outcome,
            polled: false,
            calls: vec![],
            events: vec![],
        };
        let step = answered(
            &g,
            &ctx(&cfg, after_deadline),
            &spec(Shape::Callback),
            looked,
            read.consumed,
        )
        .unwrap();
        assert_eq!(step.next.status(), Status::Succeeded);
    }

    #[test]
    fn at_the_deadline_a_pending_callback_is_not_trusted_one_last_look_decides() {
        let g = running("job-ours");
        let read = read_callbacks(
            &g,
            &signed(),
            &call(&g),
            stored(&[("cb", json!({"id": "job-ours", "status": "processing"}))]),
        );
        assert!(
            trusted(&read, false).is_some(),
            "before the deadline it spares a call"
        );
        assert!(
            trusted(&read, true).is_none(),
            "at the deadline the provider is asked"
        );
    }

    #[test]
    fn a_job_still_running_at_the_deadline_times_out_with_the_final_look_and_the_cancel_recorded() {
        let g = running("job-ours");
        let cfg = config();
        let c = ctx(&cfg, g.deadline_ms);
        let end = ending(&g, c.now).unwrap();
        let looked = Looked {
            outcome: pending(),
            polled: true,
            calls: vec![],
            events: vec![],
        };
        let cancel = Reply {
            outcome: Ok(()),
            calls: vec![],
            events: vec![],
        };
        let step = ended(&g, &c, end, cancel, looked, vec![]).unwrap();
        assert_eq!(step.next.status(), Status::TimedOut);
        assert_eq!(step.detail["final_poll"], true);
        assert_eq!(step.detail["provider_cancel"], "accepted");
        assert!(step.effects.iter().any(|e| matches!(
            e,
            Effect::Send {
                queue: QueueName::Finalize,
                ..
            }
        )));
    }

    // Chaos on AWS found it: a job finished before a 1 s deadline, the look at the deadline
    // failed (the output's copy to S3 under load), and the execution timed out.
    #[test]
    fn a_failed_look_at_the_deadline_looks_again_before_the_execution_times_out() {
        let mut g = running("job-ours");
        let cfg = config();
        let c = ctx(&cfg, g.deadline_ms + 1);
        let failed = || PollOutcome::CallFailed(Failure::new(ErrorClass::ProviderTransient, "503"));
        for n in 1..=FINAL_LOOK_RETRIES {
            assert!(ending(&g, c.now).is_some());
            assert!(looks_again(&g, &failed()), "look {n} is taken again");
            let looked = Looked {
                outcome: failed(),
                polled: true,
                calls: vec![],
                events: vec![],
            };
            let step = answered(&g, &c, &spec(Shape::Callback), looked, vec![]).unwrap();
            assert_eq!(step.next.status(), Status::Running);
            assert_eq!(step.next.hot.final_looks, n);
            assert_eq!(step.detail["final_look_retry"], n);
            assert!(step.effects.iter().any(|e| matches!(
                e,
                Effect::Send {
                    queue: QueueName::Poll,
                    ..
                }
            )));
            g = step.next;
        }
        assert!(
            !looks_again(&g, &failed()),
            "the looks are bounded: the execution then times out"
        );
        let not_retryable = PollOutcome::CallFailed(Failure::new(ErrorClass::ProviderFatal, "401"));
        assert!(!looks_again(&running("job-ours"), &not_retryable));
        // The next look that answers decides: the job done in time is delivered.
        let done = Looked {
            outcome: PollOutcome::Succeeded(image()),
            polled: true,
            calls: vec![],
            events: vec![],
        };
        let step = answered(&g, &c, &spec(Shape::Callback), done, vec![]).unwrap();
        assert_eq!(step.next.status(), Status::Succeeded);
    }

    #[test]
    fn a_cancel_requested_does_not_beat_a_stored_success() {
        let mut g = running("job-ours");
        g.cancel_requested = true;
        let end = ending(&g, 5_000);
        assert!(matches!(end, Some((Event::Canceled, Status::Canceled, _))));
        let read = read_callbacks(
            &g,
            &signed(),
            &call(&g),
            stored(&[("cb", json!({"id": "job-ours", "status": "succeeded"}))]),
        );
        assert!(matches!(
            trusted(&read, true),
            Some(PollOutcome::Succeeded(_))
        ));
    }

    #[test]
    fn a_job_canceled_at_the_provider_after_the_deadline_timed_out_unless_a_cancel_was_asked() {
        // The shapes suite found it: the cancel sent at the deadline makes Replicate post a
        // `canceled` webhook, consumed by a nudge before the deadline poll's own commit.
        let g = running("job-ours");
        let cfg = config();
        let canceled = || Looked {
            outcome: PollOutcome::Canceled {
                raw: json!({"status": "canceled"}),
            },
            polled: false,
            calls: vec![],
            events: vec![],
        };
        let late = ctx(&cfg, g.deadline_ms + 5);
        let step = answered(&g, &late, &spec(Shape::Callback), canceled(), vec![]).unwrap();
        assert_eq!(step.next.status(), Status::TimedOut);
        assert_eq!(step.failure.map(|f| f.class), Some(ErrorClass::Timeout));
        let mut asked = g.clone();
        asked.cancel_requested = true;
        let step = answered(&asked, &late, &spec(Shape::Callback), canceled(), vec![]).unwrap();
        assert_eq!(step.next.status(), Status::Canceled);
        let early = ctx(&cfg, 5_000);
        let step = answered(&g, &early, &spec(Shape::Callback), canceled(), vec![]).unwrap();
        assert_eq!(
            step.next.status(),
            Status::Canceled,
            "canceled at the provider's side"
        );
    }

    #[test]
    fn a_pending_job_is_polled_again_with_backoff_and_a_failed_status_call_is_retried() {
        let g = after(
            &queued("replicate", Shape::Polling),
            &[Event::SubmitStarted, Event::JobCreated],
        );
        let cfg = config();
        let c = ctx(&cfg, 5_000);
        let s = spec(Shape::Polling);
        let polled = |outcome| Looked {
            outcome,
            polled: true,
            calls: vec![],
            events: vec![],
        };
        let step = answered(&g, &c, &s, polled(pending()), vec![]).unwrap();
        assert_eq!(step.event, Event::Started);
        assert_eq!(step.next.hot.poll_count, 1);
        let delay = |st: &Step| match &st.effects[0] {
            Effect::Send { delay_ms, .. } => *delay_ms,
            _ => panic!("a send"),
        };
        assert_eq!(delay(&step), 2_000, "the second poll waits twice the first");
        let failed = PollOutcome::CallFailed(Failure::new(ErrorClass::ProviderUnavailable, "503"));
        let step = answered(&g, &c, &s, polled(failed), vec![]).unwrap();
        assert_eq!(step.next.status(), Status::Submitted);
        assert_eq!(step.next.hot.waiting.as_ref().unwrap().reason, "retry");
        let empty = PollOutcome::Succeeded(ProviderResult::default());
        let step = answered(&g, &c, &s, polled(empty), vec![]).unwrap();
        assert_eq!(
            step.failure.map(|f| f.class),
            Some(ErrorClass::PartialResult)
        );
    }
}
