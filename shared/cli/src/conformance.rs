//! `executor bundle conformance`: what the lifecycle expects of an integration's shape, checked
//! against the model's bundle and its replay fixtures, as a pass/fail checklist. It reads data
//! only (no replay: `executor bundle test` runs the fixtures).

use crate::replay::{Fixture, RecordedResponse};
use executor_bundles::Bundle;
use executor_bundles::format::{BundleShape, Pricing};
use executor_bundles::http::HttpResponse;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What is checked.
    pub name: &'static str,
    /// Whether it holds.
    pub pass: bool,
    /// Why (evidence, or what is missing).
    pub detail: String,
}

fn check(name: &'static str, pass: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        pass,
        detail: detail.into(),
    }
}

/// A recorded answer as the adapters see it.
pub fn response_of(r: &RecordedResponse) -> HttpResponse {
    let headers: Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone())))
        .collect();
    let body = match (&r.body, &r.body_base64) {
        (_, Some(b)) => json!({
            "body_base64": b,
            "content_type": r.headers.get("content-type").cloned().unwrap_or_default(),
        }),
        (Some(b), None) => b.clone(),
        (None, None) => Value::Null,
    };
    HttpResponse {
        status: r.status,
        headers,
        body,
    }
}

/// The usage figures a pricing unit reads.
fn priced_fields(p: &Pricing) -> Vec<String> {
    match p {
        Pricing::PerToken {
            image_input_usd_per_million,
            ..
        } => {
            let mut v = vec!["input_tokens".to_string(), "output_tokens".to_string()];
            if image_input_usd_per_million.is_some() {
                v.push("input_image_tokens".into());
            }
            v
        }
        Pricing::PerOutput { .. } | Pricing::PerOutputCredits { .. } => vec![],
        Pricing::PerSecond { .. } => vec!["predict_time".into()],
        Pricing::PerCredit { .. } | Pricing::PerOutputSecond { .. } => {
            vec!["duration_seconds".into()]
        }
        Pricing::PerCharacter { .. } => vec!["characters".into()],
        Pricing::PerUsage { field, .. } => vec![field.clone()],
    }
}

/// The checklist of one model.
pub fn checklist(bundle: &Bundle, fixtures: &[Fixture]) -> Vec<Check> {
    let mut out = Vec::new();
    let adapter = executor_bundles::adapters::for_bundle(bundle, &BTreeMap::new());
    let success = fixtures
        .iter()
        .find(|f| f.name == "success")
        .or_else(|| fixtures.iter().find(|f| f.expect.outcome == "succeeded"));

    // 1. The submit extracts a job id.
    if bundle.shape == BundleShape::Immediate {
        out.push(check(
            "submit extracts a job id",
            true,
            "immediate: the result is in the create answer",
        ));
    } else {
        let id = success
            .and_then(|f| f.interactions.first())
            .zip(adapter.as_ref())
            .and_then(|(i, a)| a.job_id(&response_of(&i.response)));
        out.push(match (success, id) {
            (None, _) => check(
                "submit extracts a job id",
                false,
                "no success fixture to read a create answer from",
            ),
            (Some(f), Some(id)) => check(
                "submit extracts a job id",
                true,
                format!("fixture {}: job {id}", f.name),
            ),
            (Some(f), None) => check(
                "submit extracts a job id",
                false,
                format!("the create answer of fixture {} yields no job id", f.name),
            ),
        });
    }

    // 2. Every status the provider answers is mapped.
    if bundle.shape != BundleShape::Immediate {
        match bundle
            .interpret
            .as_ref()
            .filter(|_| bundle.adapter == "declared")
        {
            Some(i) => {
                // A job's answers: the polls' (every answer after a fixture's first), or for a
                // provider that cannot be asked (`callback.no_status`) its callbacks' bodies.
                let no_status = bundle
                    .callback
                    .as_ref()
                    .is_some_and(|c| c.no_status.is_some());
                let bodies: Vec<&Value> = if no_status {
                    fixtures
                        .iter()
                        .flat_map(|f| f.callbacks.iter().map(|c| &c.body))
                        .collect()
                } else {
                    fixtures
                        .iter()
                        .flat_map(|f| f.interactions.iter().skip(1))
                        .filter(|x| (200..300).contains(&x.response.status))
                        .filter_map(|x| x.response.body.as_ref())
                        .collect()
                };
                let seen: BTreeSet<String> = bodies
                    .into_iter()
                    .map(
                        |body| match i.status.as_deref().and_then(|p| body.pointer(p)) {
                            None | Some(Value::Null) => String::new(),
                            Some(Value::String(s)) => s.clone(),
                            Some(v) => v.to_string(),
                        },
                    )
                    .collect();
                let unmapped: Vec<&String> = seen
                    .iter()
                    .filter(|s| !i.statuses.contains_key(*s))
                    .collect();
                out.push(check(
                    "every status is mapped",
                    unmapped.is_empty() && !i.statuses.is_empty(),
                    if unmapped.is_empty() {
                        format!(
                            "{} mapped ({}); fixtures show {}",
                            i.statuses.len(),
                            i.statuses
                                .keys()
                                .map(|k| shown(k))
                                .collect::<Vec<_>>()
                                .join(", "),
                            seen.iter().map(|k| shown(k)).collect::<Vec<_>>().join(", ")
                        )
                    } else {
                        format!(
                            "fixtures show statuses the provider file does not map: {unmapped:?}"
                        )
                    },
                ));
            }
            None => out.push(check(
                "every status is mapped",
                true,
                format!(
                    "the {} adapter maps its provider's statuses (unit tests beside it)",
                    bundle.adapter
                ),
            )),
        }
        // 3. Cancel steps where the provider can cancel.
        out.push(match (&bundle.steps.cancel.is_empty(), &bundle.no_cancel) {
            (false, _) => check("cancel steps exist", true, "steps.cancel"),
            (true, Some(why)) => check(
                "cancel steps exist",
                true,
                format!("the provider cannot cancel: {why}"),
            ),
            (true, None) => check(
                "cancel steps exist",
                false,
                "no cancel steps and no `no_cancel` saying the provider has none",
            ),
        });
    }

    // 4. Each documented error has a class and a fixture: a recorded answer the rule is the
    // first match of (a retried 429 ends in success, so outcomes alone cannot tell), or for
    // rules about failed jobs, a fixture ending with the rule's class.
    let answers: Vec<HttpResponse> = fixtures
        .iter()
        .flat_map(|f| f.interactions.iter())
        .map(|i| response_of(&i.response))
        .filter(|r| {
            !(200..300).contains(&r.status)
                || adapter.as_ref().is_some_and(|a| a.is_error_answer(r))
        })
        .collect();
    let first_matches: BTreeSet<usize> = answers
        .iter()
        .filter_map(|r| {
            let (code, message) =
                executor_bundles::rules::code_and_message(&bundle.error_fields, &r.body);
            let status = (!(200..300).contains(&r.status)).then_some(r.status);
            let rule = executor_bundles::rules::matching(
                &bundle.errors,
                status,
                code.as_deref(),
                message.as_deref(),
            )?;
            bundle.errors.iter().position(|x| std::ptr::eq(x, rule))
        })
        .collect();
    let fixture_classes: BTreeSet<&str> = fixtures
        .iter()
        .filter_map(|f| f.expect.error_class.as_deref())
        .collect();
    let uncovered: Vec<String> = bundle
        .errors
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            let covered = first_matches.contains(i)
                || (r.status.is_none() && fixture_classes.contains(r.class.as_str()));
            !covered
        })
        .map(|(i, r)| {
            format!(
                "errors[{i}] ({}{}{} → {})",
                r.status.map(|s| format!("HTTP {s}")).unwrap_or_default(),
                r.code
                    .as_deref()
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default(),
                r.code_prefix
                    .as_deref()
                    .map(|c| format!(" {c}*"))
                    .unwrap_or_default(),
                r.class
            )
        })
        .collect();
    let failure_fixtures = fixtures
        .iter()
        .filter(|f| f.expect.outcome != "succeeded" || !answers.is_empty())
        .count();
    out.push(check(
        "each documented error has a class and a fixture",
        uncovered.is_empty() && failure_fixtures > 0,
        if failure_fixtures == 0 {
            "no failure fixture".to_string()
        } else if uncovered.is_empty() {
            format!(
                "{} rule(s), each matched by a recorded answer; fixtures end with {}",
                bundle.errors.len(),
                fixture_classes
                    .iter()
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("no fixture shows {}", uncovered.join(", "))
        },
    ));

    // 5. The pricing unit reads a usage figure the provider returns.
    let fields = priced_fields(&bundle.pricing);
    out.push(match success {
        None => check(
            "pricing reads what the provider returns",
            false,
            "no success fixture",
        ),
        Some(f) => {
            let missing: Vec<&String> = fields
                .iter()
                .filter(|k| f.expect.usage.get(k.as_str()).is_none())
                .collect();
            check(
                "pricing reads what the provider returns",
                missing.is_empty() && f.expect.cost_usd_micros > 0,
                if !missing.is_empty() {
                    format!("fixture {}: usage lacks {missing:?}", f.name)
                } else if f.expect.cost_usd_micros <= 0 {
                    format!("fixture {}: the success costs nothing", f.name)
                } else {
                    format!(
                        "fixture {}: {} µ$ from {}",
                        f.name,
                        f.expect.cost_usd_micros,
                        if fields.is_empty() {
                            "the outputs".to_string()
                        } else {
                            fields.join(", ")
                        }
                    )
                },
            )
        }
    });

    // 6. Callback verification for callback shapes.
    if bundle.shape == BundleShape::Callback {
        let ok = adapter.as_ref().is_some_and(|a| a.supports_callbacks());
        out.push(check(
            "callbacks are verified",
            ok,
            if ok {
                format!("adapter {} verifies callbacks", bundle.adapter)
            } else {
                "a callback shape without a callback verification".to_string()
            },
        ));
    }

    // 7. The input schema refuses what the provider refuses, before any call.
    let refused = fixtures.iter().find(|f| {
        f.interactions.is_empty() && f.expect.error_class.as_deref() == Some("validation_error")
    });
    out.push(check(
        "the input schema refuses bad input before a call",
        refused.is_some(),
        refused
            .map(|f| format!("fixture {}", f.name))
            .unwrap_or_else(|| "no fixture of an input refused without a provider call".into()),
    ));

    // 8. The fixture set: a success, a drifted answer, an empty output.
    let names: Vec<&str> = fixtures.iter().map(|f| f.name.as_str()).collect();
    let has = |w: &str| names.iter().any(|n| n.contains(w));
    let missing: Vec<&str> = [
        ("success", success.is_some()),
        ("drift", has("drift")),
        ("empty", has("empty")),
    ]
    .iter()
    .filter(|(_, ok)| !ok)
    .map(|(n, _)| *n)
    .collect();
    out.push(check(
        "fixtures: success, drifted answer, empty output",
        missing.is_empty(),
        if missing.is_empty() {
            format!("{} fixture(s)", fixtures.len())
        } else {
            format!("missing: {}", missing.join(", "))
        },
    ));
    out
}

/// A status value as the checklist prints it: an absent status (`""`) as `(no status field)`.
fn shown(status: &str) -> &str {
    if status.is_empty() {
        "(no status field)"
    } else {
        status
    }
}
