//! Fallback chains: an execution that names fallback models moves to the next one when an
//! attempt fails with a class the chain falls back on, instead of ending. One execution id,
//! one lifecycle: the failed attempt is recorded ([`AttemptRecord`]), its lease released, and
//! the execution goes back to `queued` for the next model's submit (the `fell_back`
//! transition). The decision is made where every transition is committed
//! ([`Engine::commit_step`]), so it applies to whatever action ended the attempt: a refused
//! create, a failed job found by a poll or a callback, an empty output.
//!
//! Never on `validation_error`, `content_policy`, `canceled` or `submit_ambiguous` (a job may
//! exist: a second paid job is not a fallback), nor once a cancel was asked for or the
//! deadline passed.

use crate::engine::Engine;
use crate::model::{AttemptRecord, Effect, QueueName};
use crate::protocol::Step;
use crate::status::Status;
use crate::taxonomy::ErrorClass;
use crate::transitions::Event;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// One step of a chain as a create or an alias names it: a model, and how the input is
/// mapped to it. By default a fallback gets the fields of the create's input that its
/// schema declares; `rename` moves a field first (`{"aspect_ratio": "image_size"}`), and
/// `input` sets fields after (`{"image_size": "square_hd"}`). Written as the model id alone
/// when there is nothing to map.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(from = "TargetForm", into = "TargetForm")]
pub struct Target {
    /// The model id.
    pub model: String,
    /// Fields of the input renamed for this model (from -> to).
    pub rename: BTreeMap<String, String>,
    /// Fields set on this model's input, after the rename and the selection.
    pub input: Map<String, Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum TargetForm {
    Model(String),
    Step(StepForm),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepForm {
    model: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    rename: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    input: Map<String, Value>,
}

impl From<TargetForm> for Target {
    fn from(f: TargetForm) -> Target {
        match f {
            TargetForm::Model(model) => Target {
                model,
                ..Target::default()
            },
            TargetForm::Step(s) => Target {
                model: s.model,
                rename: s.rename,
                input: s.input,
            },
        }
    }
}

impl From<Target> for TargetForm {
    fn from(t: Target) -> TargetForm {
        if t.rename.is_empty() && t.input.is_empty() {
            TargetForm::Model(t.model)
        } else {
            TargetForm::Step(StepForm {
                model: t.model,
                rename: t.rename,
                input: t.input,
            })
        }
    }
}

impl From<&str> for Target {
    fn from(model: &str) -> Target {
        Target {
            model: model.to_string(),
            ..Target::default()
        }
    }
}

impl From<String> for Target {
    fn from(model: String) -> Target {
        Target {
            model,
            ..Target::default()
        }
    }
}

impl Target {
    /// `input` with the renames and the fields set applied (the first model of an alias:
    /// nothing is dropped, its schema judges the rest).
    pub fn apply(&self, input: &Value) -> Value {
        let mut obj = input.as_object().cloned().unwrap_or_default();
        for (from, to) in &self.rename {
            if let Some(v) = obj.remove(from) {
                obj.insert(to.clone(), v);
            }
        }
        for (k, v) in &self.input {
            obj.insert(k.clone(), v.clone());
        }
        Value::Object(obj)
    }

    /// The input as this step's model takes it: renamed, the fields `schema` declares
    /// (all of them when it declares none), then the fields set.
    pub fn map(&self, input: &Value, schema: &Value) -> Value {
        let renamed = Target {
            input: Map::new(),
            ..self.clone()
        }
        .apply(input);
        let mut selected = match (renamed.as_object(), schema["properties"].as_object()) {
            (Some(obj), Some(props)) => obj
                .iter()
                .filter(|(k, _)| props.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            (Some(obj), None) => obj.clone(),
            _ => Map::new(),
        };
        for (k, v) in &self.input {
            selected.insert(k.clone(), v.clone());
        }
        Value::Object(selected)
    }

    /// A rename to a field `schema` does not declare, if any (a mapping that cannot apply).
    pub fn unknown_rename(&self, schema: &Value) -> Option<&str> {
        let props = schema["properties"].as_object()?;
        self.rename
            .values()
            .find(|to| !props.contains_key(to.as_str()))
            .map(String::as_str)
    }
}

/// The classes a chain falls back on.
pub const FALLBACK_CLASSES: [ErrorClass; 5] = [
    ErrorClass::ProviderUnavailable,
    ErrorClass::RateLimited,
    ErrorClass::Timeout,
    ErrorClass::ProviderTransient,
    ErrorClass::PartialResult,
];

/// Most fallback models a chain may name.
pub const MAX_FALLBACKS: usize = 4;

/// The classes a failed job is retried on with the same model (`retries`): the job was
/// created and failed for a reason on the provider's side that another run may not meet
/// (fal's `runner_disconnected`, a 5xx of the job).
pub const RETRY_CLASSES: [ErrorClass; 2] = [
    ErrorClass::ProviderTransient,
    ErrorClass::ProviderUnavailable,
];

/// Most retries of one model.
pub const MAX_RETRIES: u32 = 3;

/// The provider codes of a submit that skipped its model without calling it (health-aware
/// routing): the breaker of its host open, its capacity taken.
pub const SKIP_CODES: [&str; 2] = ["circuit_open", "capacity_exhausted"];

/// The chain step an attempt that failed moves to: `(index in the chain, retry)`, or `None`
/// when the chain ends here. A step that repeats the failed model is a retry, taken only
/// when the job was created and failed with a class of [`RETRY_CLASSES`] (and not for a
/// skipped model); otherwise the retries of the model are passed over to the next model,
/// taken when the class is one of [`FALLBACK_CLASSES`].
pub(crate) fn next_step(
    chain: &[String],
    from: usize,
    model: &str,
    class: ErrorClass,
    job_created: bool,
    skipped: bool,
) -> Option<(usize, bool)> {
    let retry = RETRY_CLASSES.contains(&class) && job_created && !skipped;
    for (i, m) in chain.iter().enumerate().skip(from) {
        if m == model {
            if retry {
                return Some((i, true));
            }
            continue;
        }
        return FALLBACK_CLASSES.contains(&class).then_some((i, false));
    }
    None
}

impl Engine {
    /// `step` as it is, or, when it ends a chained execution's attempt failed with a class
    /// the chain falls back on, the step that moves it to the next model (or runs the same
    /// model again, for a retry).
    pub(crate) fn chained(&self, prev: &crate::model::Guard, step: Step) -> Step {
        let failed = &step.next;
        let Some(class) = failed.hot.error.as_ref().map(|f| f.class) else {
            return step;
        };
        if failed.status() != Status::Failed
            || prev.cancel_requested
            || self.now() >= prev.deadline_ms
        {
            return step;
        }
        let skipped = failed
            .hot
            .error
            .as_ref()
            .and_then(|f| f.provider_code.as_deref())
            .filter(|c| SKIP_CODES.contains(c))
            .map(str::to_string);
        let Some((index, retry)) = next_step(
            &prev.hot.chain,
            prev.hot.step as usize,
            &prev.model,
            class,
            failed.hot.job_id.is_some(),
            skipped.is_some(),
        ) else {
            return step;
        };
        let next_model = &prev.hot.chain[index];
        let Ok(driver) = self.driver(next_model) else {
            return step;
        };
        let spec = driver.spec();
        let now = self.now();
        let retries_before = prev
            .hot
            .attempts
            .iter()
            .rev()
            .take_while(|a| a.model == prev.model)
            .count() as u32;
        let delay = if retry {
            let ctx = crate::actions::Ctx::of(self);
            let base = self.config.submit_retry_base_ms;
            let floor = failed
                .hot
                .error
                .as_ref()
                .and_then(|f| f.retry_after_ms)
                .unwrap_or(base);
            ctx.backoff_ms(base, self.config.submit_retry_max_ms, retries_before, floor)
        } else {
            0
        };
        if now + delay as i64 >= prev.deadline_ms {
            return step;
        }
        let event = if retry {
            Event::Retried
        } else {
            Event::FellBack
        };
        let Ok(mut next) = prev.advance(event, now) else {
            return step;
        };
        let started = prev
            .hot
            .attempts
            .last()
            .map_or(prev.created_at_ms, |a| a.ended_at_ms);
        // The attempt's answer stays readable as a blob (one kept in the item would be
        // dropped with the attempt's state below).
        let mut blobs = step.blobs;
        let mut result_key = failed.hot.result_key.clone();
        if result_key.is_none()
            && let Some(r) = &failed.hot.result
            && let Ok((key, bytes)) = crate::actions::result_blob(failed, r)
        {
            blobs.push((key.clone(), bytes));
            result_key = Some(key);
        }
        next.hot.attempts.push(AttemptRecord {
            step: prev.hot.step,
            model: prev.model.clone(),
            provider: prev.provider.clone(),
            job_id: failed.hot.job_id.clone(),
            status: Status::Failed,
            error: failed.hot.error.clone(),
            started_at_ms: started,
            ended_at_ms: now,
            result_key,
            cost: None,
        });
        next.hot.step = index as u32 + 1;
        next.model = spec.id.clone();
        next.provider = spec.provider.clone();
        next.shape = spec.shape;
        let h = &mut next.hot;
        h.job_id = None;
        h.attempt = 0;
        h.attempt_id = None;
        h.lease = None;
        h.poll_count = 0;
        h.final_looks = 0;
        h.throttled = 0;
        h.result_key = None;
        h.result = None;
        h.error = None;
        h.waiting = None;
        h.provider_status = None;
        h.progress = None;
        h.terminal_at_ms = None;
        h.outcome = None;
        let mut effects = Vec::new();
        if let Some(lease) = &prev.hot.lease {
            effects.push(Effect::ReleaseLease {
                lease: lease.clone(),
            });
        }
        effects.push(crate::actions::send_next(&next, QueueName::Submit, delay));
        let mut detail = if retry {
            json!({
                "retried": prev.model,
                "retry": retries_before + 1,
                "delay_ms": delay,
            })
        } else {
            json!({"fell_back_from": prev.model, "to": spec.id})
        };
        detail["step"] = json!(next.hot.step);
        detail["error_class"] = json!(class.as_str());
        detail["failed_event"] = json!(step.event.as_str());
        detail["job_id"] = json!(failed.hot.job_id);
        if let Some(reason) = skipped {
            // Health-aware routing: the model was skipped, not called.
            detail["skipped"] = json!(reason);
        }
        let passed = index.saturating_sub(prev.hot.step as usize);
        if passed > 0 {
            detail["retries_passed_over"] = json!(passed);
        }
        Step {
            next,
            event,
            action: step.action,
            blobs,
            effects,
            calls: step.calls,
            failure: step.failure,
            detail,
            result: None,
            due_in_ms: None,
            then: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn chain(models: &[&str]) -> Vec<String> {
        models.iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn a_step_is_a_model_id_or_a_model_with_its_mapping() {
        let plain: Target = serde_json::from_value(json!("fal-ai/flux-dev")).unwrap();
        assert_eq!(plain, Target::from("fal-ai/flux-dev"));
        // Written back as it came (the idempotency hash of a plain chain is unchanged).
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            json!("fal-ai/flux-dev")
        );
        let mapped: Target = serde_json::from_value(json!({
            "model": "bfl/flux-pro-1.1",
            "rename": {"promptText": "prompt"},
            "input": {"width": 1024}
        }))
        .unwrap();
        let schema = json!({"properties": {"prompt": {}, "width": {}, "seed": {}}});
        let input = json!({"promptText": "waves", "promptImage": "https://x/a.png", "seed": 7});
        assert_eq!(
            mapped.map(&input, &schema),
            json!({"prompt": "waves", "seed": 7, "width": 1024})
        );
        assert_eq!(mapped.unknown_rename(&schema), None);
        let bad: Target =
            serde_json::from_value(json!({"model": "m", "rename": {"a": "nope"}})).unwrap();
        assert_eq!(bad.unknown_rename(&schema), Some("nope"));
        // An unknown key of a step is an error, not ignored.
        assert!(serde_json::from_value::<Target>(json!({"model": "m", "renam": {}})).is_err());
        // The first model of an alias: renamed and set, nothing dropped.
        assert_eq!(
            mapped.apply(&input),
            json!({"prompt": "waves", "promptImage": "https://x/a.png", "seed": 7, "width": 1024})
        );
    }

    #[test]
    fn a_transient_job_failure_retries_the_model_then_falls_back() {
        // a (retries 2) -> b (retries 1): the chain after a.
        let c = chain(&["a", "a", "b", "b"]);
        let t = ErrorClass::ProviderTransient;
        assert_eq!(next_step(&c, 0, "a", t, true, false), Some((0, true)));
        assert_eq!(next_step(&c, 1, "a", t, true, false), Some((1, true)));
        // The retries used, the next model.
        assert_eq!(next_step(&c, 2, "a", t, true, false), Some((2, false)));
        assert_eq!(next_step(&c, 3, "b", t, true, false), Some((3, true)));
        assert_eq!(next_step(&c, 4, "b", t, true, false), None);
    }

    #[test]
    fn a_refused_create_or_a_skip_or_another_class_passes_over_the_retries() {
        let c = chain(&["a", "a", "b"]);
        let t = ErrorClass::ProviderTransient;
        // No job was created (the submit's own attempts already retried the create).
        assert_eq!(next_step(&c, 0, "a", t, false, false), Some((2, false)));
        // The model was skipped for its health: its retries would meet the same.
        let u = ErrorClass::ProviderUnavailable;
        assert_eq!(next_step(&c, 0, "a", u, false, true), Some((2, false)));
        // rate_limited and timeout fall back but do not retry the model.
        for class in [
            ErrorClass::RateLimited,
            ErrorClass::Timeout,
            ErrorClass::PartialResult,
        ] {
            assert_eq!(next_step(&c, 0, "a", class, true, false), Some((2, false)));
        }
        // Never on the classes the chain does not fall back on.
        for class in [
            ErrorClass::ValidationError,
            ErrorClass::ContentPolicy,
            ErrorClass::Canceled,
            ErrorClass::SubmitAmbiguous,
        ] {
            assert_eq!(next_step(&c, 0, "a", class, true, false), None);
        }
        // Retries only: a class that does not retry ends the chain.
        let only = chain(&["a", "a"]);
        assert_eq!(
            next_step(&only, 0, "a", ErrorClass::RateLimited, true, false),
            None
        );
    }
}
