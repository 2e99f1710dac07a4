//! CloudWatch Embedded Metric Format: one JSON log line per committed transition (and per
//! provider call), which CloudWatch turns into metrics (namespace `executor`) without any API
//! call from the function. The line also carries the execution id, so the same line is the
//! trace of the step in the logs.

use executor_lifecycle::{Guard, Observer, TransitionRecord};
use serde_json::{Value, json};
use std::io::Write;

/// Writes EMF lines to stdout (the Lambda log stream).
#[derive(Debug, Default, Clone, Copy)]
pub struct EmfObserver;

/// The EMF document of one committed transition of an execution (id, model, provider).
pub fn document(id: &str, model: &str, provider: &str, record: &TransitionRecord) -> Value {
    let latency_ms: u64 = record.calls.iter().map(|c| c.latency_ms).sum();
    let mut metrics = vec![json!({"Name": "Transitions", "Unit": "Count"})];
    if !record.calls.is_empty() {
        metrics.push(json!({"Name": "ProviderCalls", "Unit": "Count"}));
        metrics.push(json!({"Name": "ProviderLatency", "Unit": "Milliseconds"}));
    }
    if record.failure.is_some() {
        metrics.push(json!({"Name": "Failures", "Unit": "Count"}));
    }
    let mut doc = json!({
        "_aws": {
            "Timestamp": record.at_ms,
            "CloudWatchMetrics": [{
                "Namespace": "executor",
                // `[error_class]` alone: one alarm per class across providers
                // (`PipelineConfigurationAlarm` in template.yaml).
                "Dimensions": [["action", "provider"], ["provider", "error_class"], ["error_class"]],
                "Metrics": metrics,
            }],
        },
        "action": record.action,
        "provider": provider,
        "error_class": record.failure.as_ref().map(|f| f.class.as_str()).unwrap_or("none"),
        "event": record.event.as_str(),
        "status": record.to.as_str(),
        "model": model,
        "execution_id": id,
        "version": record.version,
        "Transitions": 1,
    });
    if !record.calls.is_empty() {
        doc["ProviderCalls"] = json!(record.calls.len());
        doc["ProviderLatency"] = json!(latency_ms);
    }
    if record.failure.is_some() {
        doc["Failures"] = json!(1);
    }
    doc
}

/// The EMF document of one count (`CallbacksRefused`, `ReconcileFailures`), with its
/// dimensions as members.
pub fn count_document(metric: &str, at_ms: i64, dims: &[(&str, &str)]) -> Value {
    let names: Vec<&str> = dims.iter().map(|(k, _)| *k).collect();
    let mut doc = json!({
        "_aws": {
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{
                "Namespace": "executor",
                "Dimensions": [names],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
    });
    for (k, v) in dims {
        doc[*k] = json!(v);
    }
    doc[metric] = json!(1);
    doc
}

fn now_ms() -> i64 {
    use executor_lifecycle::Clock as _;
    executor_lifecycle::SystemClock.now_ms()
}

fn emit(doc: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{doc}");
}

impl Observer for EmfObserver {
    fn callback_refused(&self, provider: &str) {
        emit(&count_document(
            "CallbacksRefused",
            now_ms(),
            &[("provider", provider)],
        ));
    }

    fn reconcile_failed(&self, execution_id: &str, reason: &str) {
        let mut doc = count_document("ReconcileFailures", now_ms(), &[]);
        doc["execution_id"] = json!(execution_id);
        doc["reason"] = json!(reason);
        emit(&doc);
    }

    fn committed(&self, guard: &Guard, record: &TransitionRecord) {
        let line = document(&guard.id, &guard.model, &guard.provider, record).to_string();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use executor_lifecycle::{CallRecord, ErrorClass, Event, Failure, Status};

    /// What CloudWatch requires of an EMF document: every dimension and metric it declares is
    /// a member of the root, metric values are numbers.
    fn assert_valid_emf(doc: &Value) {
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].is_i64());
        for directive in aws["CloudWatchMetrics"].as_array().unwrap() {
            assert!(directive["Namespace"].is_string());
            for set in directive["Dimensions"].as_array().unwrap() {
                for d in set.as_array().unwrap() {
                    assert!(
                        doc[d.as_str().unwrap()].is_string(),
                        "dimension {d} missing"
                    );
                }
            }
            for m in directive["Metrics"].as_array().unwrap() {
                let name = m["Name"].as_str().unwrap();
                assert!(doc[name].is_number(), "metric {name} missing");
            }
        }
    }

    #[test]
    fn documents_are_valid_emf() {
        let mut record = TransitionRecord {
            version: 3,
            from: Some(Status::Submitting),
            to: Status::Submitted,
            event: Event::JobCreated,
            at_ms: 1_795_700_000_000,
            action: "submit".into(),
            calls: vec![],
            failure: None,
            detail: Value::Null,
        };
        let plain = document("ex_1", "fal-ai/flux-dev", "fal", &record);
        assert_valid_emf(&plain);
        assert_eq!(plain["Transitions"], 1);
        assert!(plain.get("ProviderCalls").is_none());
        record.calls.push(CallRecord {
            step: "create".into(),
            method: "POST".into(),
            url: "https://queue.fal.run/fal-ai/flux/dev".into(),
            status: Some(429),
            latency_ms: 120,
            error: None,
            retried: None,
        });
        record.failure = Some(Failure::new(ErrorClass::RateLimited, "slow down"));
        let failed = document("ex_1", "fal-ai/flux-dev", "fal", &record);
        assert_valid_emf(&failed);
        assert_eq!(failed["ProviderLatency"], 120);
        assert_eq!(failed["error_class"], "rate_limited");
        assert_eq!(failed["Failures"], 1);
        // The alarm on misconfigured providers reads Failures by error_class alone.
        assert!(
            failed["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!(["error_class"]))
        );
    }
}
