//! The failure taxonomy: one language for every failure, whatever the provider.
//!
//! Adapters classify provider responses into an [`ErrorClass`]; the lifecycle decides policy
//! (retry, fail, bill) from the class alone. The customer message is fixed per class so support,
//! product and engineering read the same words.

use serde::{Deserialize, Serialize};

/// Who caused a failure.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The request itself was wrong (bad input, canceled on request).
    Customer,
    /// The model provider failed or refused.
    Provider,
    /// This system or its configuration failed.
    Platform,
}

/// Every way an execution (or one call inside it) can fail.
#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The provider could not be reached or shed load (connection refused, 502/503, open breaker).
    ProviderUnavailable,
    /// The provider throttled us (429 that says "try later").
    RateLimited,
    /// The input was rejected (by our schema or by the provider's validation).
    ValidationError,
    /// A call or the whole execution ran out of time.
    Timeout,
    /// A provider error that may go away on retry (500, a flaky job failure marked retryable).
    ProviderTransient,
    /// A provider error that will not go away on retry (the job failed for good).
    ProviderFatal,
    /// Our configuration is wrong: bad credentials, missing billing on the provider account, bad bundle.
    PipelineConfiguration,
    /// A provider callback could not be verified or understood.
    CallbackFailure,
    /// The outcome exists but could not be delivered to the customer.
    DegradedFinalization,
    /// The provider reported success but the output is empty or incomplete.
    PartialResult,
    /// The execution was canceled on request.
    Canceled,
    /// The provider refused the input or output on content-policy grounds.
    ContentPolicy,
    /// A create call may or may not have created a provider job; we did not resubmit.
    SubmitAmbiguous,
}

impl ErrorClass {
    /// Every class, for docs and tests.
    pub const ALL: [ErrorClass; 13] = [
        ErrorClass::ProviderUnavailable,
        ErrorClass::RateLimited,
        ErrorClass::ValidationError,
        ErrorClass::Timeout,
        ErrorClass::ProviderTransient,
        ErrorClass::ProviderFatal,
        ErrorClass::PipelineConfiguration,
        ErrorClass::CallbackFailure,
        ErrorClass::DegradedFinalization,
        ErrorClass::PartialResult,
        ErrorClass::Canceled,
        ErrorClass::ContentPolicy,
        ErrorClass::SubmitAmbiguous,
    ];

    /// May the same call succeed if tried again later?
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::ProviderUnavailable
                | ErrorClass::RateLimited
                | ErrorClass::Timeout
                | ErrorClass::ProviderTransient
                | ErrorClass::CallbackFailure
        )
    }

    /// Who is at fault.
    pub fn fault(self) -> Fault {
        match self {
            ErrorClass::ValidationError | ErrorClass::Canceled | ErrorClass::ContentPolicy => {
                Fault::Customer
            }
            ErrorClass::ProviderUnavailable
            | ErrorClass::RateLimited
            | ErrorClass::Timeout
            | ErrorClass::ProviderTransient
            | ErrorClass::ProviderFatal
            | ErrorClass::CallbackFailure
            | ErrorClass::PartialResult => Fault::Provider,
            ErrorClass::PipelineConfiguration
            | ErrorClass::DegradedFinalization
            | ErrorClass::SubmitAmbiguous => Fault::Platform,
        }
    }

    /// Is the customer charged for an execution that ends with this class?
    /// Only a delivered-late success is billable: the work was done.
    pub fn billable(self) -> bool {
        matches!(self, ErrorClass::DegradedFinalization)
    }

    /// The sentence a customer sees.
    pub fn customer_message(self) -> &'static str {
        match self {
            ErrorClass::ProviderUnavailable => {
                "The model provider is temporarily unavailable. Please try again later."
            }
            ErrorClass::RateLimited => {
                "The model provider is rate limiting requests. Please try again shortly."
            }
            ErrorClass::ValidationError => {
                "The input was rejected. Check the field named in the error."
            }
            ErrorClass::Timeout => "The execution took longer than its maximum duration.",
            ErrorClass::ProviderTransient => {
                "The model provider had a temporary error. Retrying may succeed."
            }
            ErrorClass::ProviderFatal => "The model provider could not complete this execution.",
            ErrorClass::PipelineConfiguration => {
                "This model is misconfigured on our side. We have been notified."
            }
            ErrorClass::CallbackFailure => "The provider's notification could not be verified.",
            ErrorClass::DegradedFinalization => {
                "The execution finished but its result could not be delivered to your webhook."
            }
            ErrorClass::PartialResult => "The model returned an empty or incomplete result.",
            ErrorClass::Canceled => "The execution was canceled.",
            ErrorClass::ContentPolicy => "The provider's content policy rejected this request.",
            ErrorClass::SubmitAmbiguous => {
                "We could not confirm whether the provider started this execution, so we did not retry it."
            }
        }
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::ProviderUnavailable => "provider_unavailable",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::ValidationError => "validation_error",
            ErrorClass::Timeout => "timeout",
            ErrorClass::ProviderTransient => "provider_transient",
            ErrorClass::ProviderFatal => "provider_fatal",
            ErrorClass::PipelineConfiguration => "pipeline_configuration",
            ErrorClass::CallbackFailure => "callback_failure",
            ErrorClass::DegradedFinalization => "degraded_finalization",
            ErrorClass::PartialResult => "partial_result",
            ErrorClass::Canceled => "canceled",
            ErrorClass::ContentPolicy => "content_policy",
            ErrorClass::SubmitAmbiguous => "submit_ambiguous",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<ErrorClass> {
        ErrorClass::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failure: its class plus what the provider said.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The class, which decides policy.
    pub class: ErrorClass,
    /// Human-readable detail (provider message or ours); never contains secrets.
    pub message: String,
    /// The provider's own code (`rate_limit_exceeded`, `SAFETY.INPUT.TEXT`, `E1001`...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
    /// HTTP status of the provider response, if the failure came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The field that is wrong, as a JSON pointer into the input (validation errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// How long the provider asked us to wait (`Retry-After`), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl Failure {
    /// A failure of `class` with a message.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Failure {
            class,
            message: message.into(),
            provider_code: None,
            http_status: None,
            field: None,
            retry_after_ms: None,
        }
    }

    /// A validation error naming the field (JSON pointer).
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut f = Failure::new(ErrorClass::ValidationError, message);
        f.field = Some(field.into());
        f
    }

    /// Sets the provider code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.provider_code = Some(code.into());
        self
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    /// Sets the provider's requested wait.
    pub fn with_retry_after_ms(mut self, ms: Option<u64>) -> Self {
        self.retry_after_ms = ms;
        self
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_round_trips_and_has_a_message() {
        for c in ErrorClass::ALL {
            assert_eq!(ErrorClass::parse(c.as_str()), Some(c));
            assert!(!c.customer_message().is_empty());
            let json = serde_json::to_string(&c).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }

    #[test]
    fn policy_is_sane() {
        assert!(ErrorClass::RateLimited.is_retryable());
        assert!(!ErrorClass::ValidationError.is_retryable());
        assert!(!ErrorClass::SubmitAmbiguous.is_retryable());
        assert_eq!(ErrorClass::ValidationError.fault(), Fault::Customer);
        assert_eq!(ErrorClass::PipelineConfiguration.fault(), Fault::Platform);
        assert!(!ErrorClass::ProviderFatal.billable());
    }
}
