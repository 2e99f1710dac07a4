//! Counting the AWS requests the backend makes, by service and operation: an SDK interceptor
//! that sees every transmitted attempt (retries included, as AWS bills them). Used by the
//! request-accounting tests and the AWS cost figures in docs/benchmarks.md.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Request counts keyed by (service, operation), e.g. ("dynamodb", "UpdateItem").
pub type RequestCounts = BTreeMap<(String, String), u64>;

/// A shared counter of transmitted AWS requests. Cloning shares the counts.
#[derive(Debug, Clone, Default)]
pub struct RequestMeter {
    counts: Arc<Mutex<RequestCounts>>,
}

impl RequestMeter {
    /// A meter with nothing counted.
    pub fn new() -> RequestMeter {
        RequestMeter::default()
    }

    /// The counts so far.
    pub fn snapshot(&self) -> RequestCounts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Returns the counts so far and starts again from zero.
    pub fn take(&self) -> RequestCounts {
        self.counts
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    fn record(&self, service: &str, operation: &str) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((service.to_lowercase(), operation.to_string()))
                .or_default() += 1;
        }
    }
}

/// Total requests in a set of counts.
pub fn total(counts: &RequestCounts) -> u64 {
    counts.values().sum()
}

/// Requests to one service ("s3", "dynamodb", "sqs").
pub fn service_total(counts: &RequestCounts, service: &str) -> u64 {
    counts
        .iter()
        .filter(|((s, _), _)| s == service)
        .map(|(_, n)| n)
        .sum()
}

impl Intercept for RequestMeter {
    fn name(&self) -> &'static str {
        "RequestMeter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_string(), m.name().to_string()))
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        self.record(&service, &operation);
        Ok(())
    }
}
