//! Finalize: load the result, compute the cost, deliver the outcome (customer webhook, signed;
//! downstream event with a stable id), record a degraded finalization when delivery keeps
//! failing, release the lease.

use super::submit::done;
use crate::engine::{Engine, EngineError};
use crate::model::{Cost, Effect, Guard, OutcomeEvent, QueueName, Wait};
use crate::protocol::{Handled, Step};
use crate::status::Status;
use crate::taxonomy::{ErrorClass, Failure};
use crate::transitions::Event;
use serde_json::{Value, json};

/// Runs finalize for an execution in a terminal (not final) status.
pub(crate) async fn run(engine: &Engine, guard: Guard) -> Result<Handled, EngineError> {
    let request = super::load_request(engine, &guard).await?;
    let record = engine.result(&guard).await?;
    let result = record.as_ref().and_then(|r| r.result.clone());
    let cost = match (&result, engine.driver(&guard.model)) {
        (Some(r), Ok(driver)) if guard.status() == Status::Succeeded => {
            let mut c = driver.cost(r);
            c.billable = true;
            c
        }
        _ => Cost::default(),
    };
    let event = outcome_event(&guard, &cost, result.as_ref());
    let now = engine.now();

    let delivery = match &request.webhook_url {
        Some(url) => Some(engine.ports.webhooks.deliver(url, &event).await),
        None => None,
    };
    let attempts = guard.hot.delivery_attempts + u32::from(delivery.is_some());
    let step = match delivery {
        Some(Err(failure)) if attempts < engine.config.delivery_max_attempts => {
            let delay = engine.config.backoff_ms(
                engine.config.delivery_retry_base_ms,
                engine.config.delivery_retry_base_ms.saturating_mul(32),
                attempts,
                engine.config.scaled(engine.config.delivery_retry_base_ms) / 2,
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
            next.hot.cost = Some(cost.clone());
            let mut step = Step::new(next.clone(), Event::DeliveryFailed, "finalize");
            step.effects = final_effects(&next, event);
            step.detail = json!({"delivery_attempts": attempts, "parked": true});
            step.failure = Some(degraded);
            step
        }
        delivered => {
            let mut next = guard.advance(Event::Delivered, now)?;
            next.hot.delivery_attempts = attempts;
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
    };
    done(engine.commit_step(&guard, step).await?)
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
    let now = engine.now();
    let mut next = guard.advance(Event::Redelivered, now)?;
    next.hot.delivery_attempts = guard.hot.delivery_attempts + 1;
    let previous = next.hot.delivery_error.take();
    let mut step = Step::new(next, Event::Redelivered, "redrive");
    step.detail = json!({
        "delivery_attempts": guard.hot.delivery_attempts + 1,
        "previous_delivery_error": previous.map(|f| f.message),
    });
    Ok(match engine.commit_step(&guard, step).await? {
        crate::protocol::Committed::Won(g) => Redrive::Delivered(g),
        crate::protocol::Committed::Lost => Redrive::Raced,
    })
}
