//! Finalize: load the result, compute the cost, deliver the outcome (customer webhook, signed;
//! downstream event with a stable id), record a degraded finalization when delivery keeps
//! failing, release the lease.
//!
//! The decisions come first (pure: guard, result, delivery answer, clock → [`Step`]), the
//! runners after them.

use super::Ctx;
use crate::engine::{Engine, EngineError};
use crate::model::{Cost, Effect, Guard, OutcomeEvent, QueueName, Wait};
use crate::protocol::{Handled, Step};
use crate::status::Status;
use crate::taxonomy::{ErrorClass, Failure};
use crate::transitions::Event;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------------

/// The cost of an execution: billable only when it succeeded with a result, computed by the
/// model's own pricing (a model no longer configured costs nothing here).
pub(crate) fn cost_of(
    guard: &Guard,
    driver: Option<&dyn crate::provider::ModelDriver>,
    result: Option<&crate::model::ProviderResult>,
) -> Cost {
    match (result, driver) {
        (Some(r), Some(driver)) if guard.status() == Status::Succeeded => {
            let mut c = driver.cost(r);
            c.billable = true;
            c
        }
        _ => Cost::default(),
    }
}

/// What the delivery (if the customer asked for a webhook) means: delivered or no webhook →
/// `finalized` with the outcome event published; failed → a retry with backoff, and past the
/// attempts `finalized_degraded` (the event is published all the same; a redrive can deliver
/// later).
pub(crate) fn delivered(
    guard: &Guard,
    ctx: &Ctx,
    cost: Cost,
    event: OutcomeEvent,
    delivery: Option<Result<(), Failure>>,
) -> Result<Step, EngineError> {
    let now = ctx.now;
    let config = ctx.config;
    let attempts = guard.hot.delivery_attempts + u32::from(delivery.is_some());
    Ok(match delivery {
        Some(Err(failure)) if attempts < config.delivery_max_attempts => {
            let delay = ctx.backoff_ms(
                config.delivery_retry_base_ms,
                config.delivery_retry_base_ms.saturating_mul(32),
                attempts,
                config.scaled(config.delivery_retry_base_ms) / 2,
            );
            let mut next = guard.advance(Event::DeliveryRetry, now)?;
            next.hot.delivery_attempts = attempts;
            next.hot.waiting = Some(Wait {
                reason: "delivery_retry".into(),
                since_ms: now,
                until_ms: now + delay as i64,
                detail: Some(failure.to_string()),
            });
            let mut step = Step::new(next.clone(), Event::DeliveryRetry, "finalize");
            step.effects
                .push(super::send_next(&next, QueueName::Finalize, delay));
            step.detail = json!({"delivery_attempt": attempts, "retry_in_ms": delay});
            step.failure = Some(failure);
            step
        }
        Some(Err(failure)) => {
            let degraded = Failure::new(
                ErrorClass::DegradedFinalization,
                format!(
                    "outcome delivery failed {attempts} times: {}",
                    failure.message
                ),
            );
            let mut next = guard.advance(Event::DeliveryFailed, now)?;
            next.hot.delivery_attempts = attempts;
            next.hot.delivery_error = Some(degraded.clone());
            crate::budget::BudgetHold::settle(&mut next, &cost);
            next.hot.cost = Some(cost);
            let mut step = Step::new(next.clone(), Event::DeliveryFailed, "finalize");
            step.effects = final_effects(&next, event);
            step.detail = json!({"delivery_attempts": attempts, "parked": true});
            step.failure = Some(degraded);
            step
        }
        delivered => {
            let mut next = guard.advance(Event::Delivered, now)?;
            next.hot.delivery_attempts = attempts;
            crate::budget::BudgetHold::settle(&mut next, &cost);
            next.hot.cost = Some(cost.clone());
            let mut step = Step::new(next.clone(), Event::Delivered, "finalize");
            step.effects = final_effects(&next, event);
            step.detail = json!({
                "webhook_delivered": delivered.is_some(),
                "delivery_attempts": attempts,
                "cost_usd_micros": cost.provider_usd_micros,
                "billable": cost.billable,
                "cost_lines": cost.lines,
            });
            step
        }
    })
}

/// A parked outcome delivered by a redrive: `redelivered` → `finalized`, the delivery error
/// cleared.
pub(crate) fn redelivered(guard: &Guard, ctx: &Ctx) -> Result<Step, EngineError> {
    let mut next = guard.advance(Event::Redelivered, ctx.now)?;
    next.hot.delivery_attempts = guard.hot.delivery_attempts + 1;
    let previous = next.hot.delivery_error.take();
    let mut step = Step::new(next, Event::Redelivered, "redrive");
    step.detail = json!({
        "delivery_attempts": guard.hot.delivery_attempts + 1,
        "previous_delivery_error": previous.map(|f| f.message),
    });
    Ok(step)
}

// ---------------------------------------------------------------------------------------------
// Runners
// ---------------------------------------------------------------------------------------------

/// Runs finalize for an execution in a terminal (not final) status.
pub(crate) async fn run(engine: &Engine, guard: Guard) -> Result<Handled, EngineError> {
    let request = super::load_request(engine, &guard).await?;
    let record = engine.result(&guard).await?;
    let result = record.as_ref().and_then(|r| r.result.clone());
    let driver = engine.driver(&guard.model).ok();
    let cost = cost_of(&guard, driver.as_deref(), result.as_ref());
    let event = outcome_event(&guard, &cost, result.as_ref());
    let delivery = match &request.webhook_url {
        Some(url) => Some(engine.ports.webhooks.deliver(url, &event).await),
        None => None,
    };
    let step = delivered(&guard, &Ctx::of(engine), cost, event, delivery)?;
    super::commit(engine, &guard, step).await
}

fn final_effects(next: &Guard, event: OutcomeEvent) -> Vec<Effect> {
    let mut effects = vec![Effect::Publish {
        event: Box::new(event),
    }];
    if let Some(lease) = &next.hot.lease {
        effects.push(Effect::ReleaseLease {
            lease: lease.clone(),
        });
    }
    effects
}

/// The outcome event of an execution: its id is the same forever.
pub fn outcome_event(
    guard: &Guard,
    cost: &Cost,
    result: Option<&crate::model::ProviderResult>,
) -> OutcomeEvent {
    OutcomeEvent {
        id: format!("evt_{}", guard.id),
        kind: format!("execution.{}", guard.hot.outcome.unwrap_or(guard.status())),
        execution_id: guard.id.clone(),
        tenant: guard.tenant.clone(),
        model: guard.model.clone(),
        provider: guard.provider.clone(),
        status: guard.hot.outcome.unwrap_or(guard.status()),
        outputs: result.map(|r| r.outputs.clone()).unwrap_or_default(),
        error: guard.hot.error.clone(),
        cost: cost.clone(),
        usage: result.map(|r| r.usage.clone()).unwrap_or(Value::Null),
        created_at_ms: guard.created_at_ms,
        completed_at_ms: guard.hot.terminal_at_ms.unwrap_or(guard.updated_at_ms),
    }
}

/// What a redrive did.
#[derive(Debug, Clone)]
pub enum Redrive {
    /// Delivered: the execution is `finalized` now.
    Delivered(Box<Guard>),
    /// Delivery failed again; nothing changed.
    Failed(Failure),
    /// Someone else committed first (a concurrent redrive); nothing done here.
    Raced,
    /// The execution is not `finalized_degraded` (its status); nothing to redrive.
    NotDegraded(crate::status::Status),
}

/// Delivers a parked outcome once more (the same event id, so receivers deduplicate); on
/// success commits `redelivered` → `finalized` and clears the delivery error.
pub(crate) async fn redrive(engine: &Engine, guard: Guard) -> Result<Redrive, EngineError> {
    let request = super::load_request(engine, &guard).await?;
    let record = engine.result(&guard).await?;
    let result = record.as_ref().and_then(|r| r.result.clone());
    let cost = guard.hot.cost.clone().unwrap_or_default();
    let event = outcome_event(&guard, &cost, result.as_ref());
    if let Some(url) = &request.webhook_url
        && let Err(failure) = engine.ports.webhooks.deliver(url, &event).await
    {
        return Ok(Redrive::Failed(failure));
    }
    let step = redelivered(&guard, &Ctx::of(engine))?;
    Ok(match engine.commit_step(&guard, step).await? {
        crate::protocol::Committed::Won(g) => Redrive::Delivered(g),
        crate::protocol::Committed::Lost => Redrive::Raced,
    })
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
    use crate::model::Shape;

    fn succeeded() -> Guard {
        let mut g = after(
            &queued("replicate", Shape::Callback),
            &[
                Event::SubmitStarted,
                Event::JobCreated,
                Event::Started,
                Event::JobSucceeded,
            ],
        );
        g.hot.lease = Some(crate::model::Lease {
            scope: "replicate".into(),
            id: "ex_test:1:v0".into(),
        });
        g
    }

    fn publishes(step: &Step) -> bool {
        step.effects
            .iter()
            .any(|e| matches!(e, Effect::Publish { event } if event.id == "evt_ex_test"))
    }

    #[test]
    fn a_failed_delivery_is_retried_with_backoff_then_parked_degraded_with_the_event_published() {
        let cfg = config();
        let c = ctx(&cfg, 10_000);
        let g = succeeded();
        let event = outcome_event(&g, &Cost::default(), None);
        let refused = || {
            Some(Err(Failure::new(
                ErrorClass::ProviderUnavailable,
                "HTTP 503",
            )))
        };
        let step = delivered(&g, &c, Cost::default(), event.clone(), refused()).unwrap();
        assert_eq!(step.event, Event::DeliveryRetry);
        assert_eq!(step.next.hot.delivery_attempts, 1);
        assert!(
            !publishes(&step),
            "nothing is published before the last attempt"
        );
        let mut last = g.clone();
        last.hot.delivery_attempts = cfg.delivery_max_attempts - 1;
        let step = delivered(&last, &c, Cost::default(), event, refused()).unwrap();
        assert_eq!(step.event, Event::DeliveryFailed);
        assert_eq!(step.next.status(), Status::FinalizedDegraded);
        assert_eq!(
            step.next.hot.delivery_error.as_ref().map(|f| f.class),
            Some(ErrorClass::DegradedFinalization)
        );
        assert!(publishes(&step), "billing gets the event all the same");
        assert!(
            step.effects
                .iter()
                .any(|e| matches!(e, Effect::ReleaseLease { .. }))
        );
    }

    #[test]
    fn without_a_webhook_the_outcome_is_published_once_with_its_stable_id() {
        let cfg = config();
        let g = succeeded();
        let event = outcome_event(&g, &Cost::default(), None);
        assert_eq!(event.kind, "execution.succeeded");
        let step = delivered(&g, &ctx(&cfg, 10_000), Cost::default(), event, None).unwrap();
        assert_eq!(step.next.status(), Status::Finalized);
        assert_eq!(step.next.hot.delivery_attempts, 0);
        assert!(publishes(&step));
    }

    #[test]
    fn only_a_success_is_billable() {
        let g = succeeded();
        assert!(!cost_of(&g, None, None).billable);
        let failed = after(
            &queued("replicate", Shape::Polling),
            &[Event::SubmitStarted, Event::JobCreated, Event::JobFailed],
        );
        assert!(!cost_of(&failed, None, Some(&Default::default())).billable);
    }

    #[test]
    fn a_redrive_clears_the_delivery_error_and_counts_the_attempt() {
        let cfg = config();
        let mut g = succeeded();
        g.hot.delivery_attempts = 5;
        let parked = delivered(
            &g,
            &ctx(&cfg, 10_000),
            Cost::default(),
            outcome_event(&g, &Cost::default(), None),
            Some(Err(Failure::new(ErrorClass::ProviderUnavailable, "down"))),
        )
        .unwrap()
        .next;
        let step = redelivered(&parked, &ctx(&cfg, 20_000)).unwrap();
        assert_eq!(step.next.status(), Status::Finalized);
        assert!(step.next.hot.delivery_error.is_none());
        assert_eq!(step.next.hot.delivery_attempts, 7);
        assert!(
            step.detail["previous_delivery_error"]
                .as_str()
                .unwrap()
                .contains("down")
        );
    }
}
