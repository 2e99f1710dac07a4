//! Prometheus metrics of `executor dev` at `GET /metrics`: per-action transitions, per-provider
//! calls and their latency, failures by error class, fed by the engine's observer port.

use executor_lifecycle::{Guard, Observer, TransitionRecord};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn call_latency_histogram() -> Histogram {
    // 5 ms .. ~20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// The registry and the metric families.
pub struct Metrics {
    registry: Registry,
    transitions: Family<Labels, Counter>,
    calls: Family<Labels, Counter>,
    call_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    failures: Family<Labels, Counter>,
    callbacks_refused: Family<Labels, Counter>,
    reconcile_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Empty metrics, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("executor");
        let transitions = Family::<Labels, Counter>::default();
        let calls = Family::<Labels, Counter>::default();
        let call_seconds = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
            call_latency_histogram,
        );
        let failures = Family::<Labels, Counter>::default();
        registry.register(
            "transitions",
            "Committed transitions by action, event, resulting status and provider",
            transitions.clone(),
        );
        registry.register(
            "provider_calls",
            "Outbound provider calls by provider, step and HTTP status (or 'error')",
            calls.clone(),
        );
        registry.register(
            "provider_call_seconds",
            "Latency of outbound provider calls by provider",
            call_seconds.clone(),
        );
        registry.register(
            "failures",
            "Transitions that recorded a failure, by provider and error class",
            failures.clone(),
        );
        let callbacks_refused = Family::<Labels, Counter>::default();
        registry.register(
            "callbacks_refused",
            "Provider callbacks refused (bad signature, another job's, past the cap), by provider",
            callbacks_refused.clone(),
        );
        let reconcile_failures = Counter::default();
        registry.register(
            "reconcile_failures",
            "Executions the reconciler could not re-drive in a pass",
            reconcile_failures.clone(),
        );
        Metrics {
            registry,
            callbacks_refused,
            reconcile_failures,
            transitions,
            calls,
            call_seconds,
            failures,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Observer for Metrics {
    fn callback_refused(&self, provider: &str) {
        self.callbacks_refused
            .get_or_create(&l(&[("provider", provider)]))
            .inc();
    }

    fn reconcile_failed(&self, _execution_id: &str, _reason: &str) {
        self.reconcile_failures.inc();
    }

    fn committed(&self, guard: &Guard, record: &TransitionRecord) {
        let provider = guard.provider.as_str();
        self.transitions
            .get_or_create(&l(&[
                ("action", &record.action),
                ("event", record.event.as_str()),
                ("status", record.to.as_str()),
                ("provider", provider),
            ]))
            .inc();
        for call in &record.calls {
            let status = call
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "error".into());
            self.calls
                .get_or_create(&l(&[
                    ("provider", provider),
                    ("step", &call.step),
                    ("status", &status),
                ]))
                .inc();
            self.call_seconds
                .get_or_create(&l(&[("provider", provider)]))
                .observe(call.latency_ms as f64 / 1000.0);
        }
        if let Some(f) = &record.failure {
            self.failures
                .get_or_create(&l(&[
                    ("provider", provider),
                    ("error_class", f.class.as_str()),
                ]))
                .inc();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_text() {
        // Families appear once they have a sample (tests/tests/metrics.rs drives them); the
        // reconcile failure counter has no labels, so it is there from the start, at zero.
        let m = Metrics::new();
        let text = m.render();
        assert!(
            text.contains("executor_reconcile_failures_total 0\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(!text.contains("executor_transitions_total"), "{text}");
    }
}
