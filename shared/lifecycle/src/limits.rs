//! The size limits AWS enforces, enforced by every port (embedded and AWS alike) so that an
//! oversize write fails a test instead of production. Each is the documented service quota:
//!
//! - DynamoDB item: 400 KB, attribute names and values together
//!   (docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html).
//! - SQS message: 256 KiB (262,144 bytes) of body and attributes, the queues' default
//!   `MaximumMessageSize` (docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html).
//! - Outcome event: 256 KiB, an SQS message (the outcome queue) and an EventBridge entry alike.
//! - Lambda synchronous invocation: 6 MB request (the event) and 6 MB response
//!   (docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html; the Invoke API refuses an
//!   event over 6,291,456 bytes and a response over 6,291,556: the stricter is used for both).
//! - API Gateway HTTP API request: 10 MB (docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html).

use crate::ports::StoreError;

/// DynamoDB's item size limit.
pub const DYNAMODB_ITEM_MAX_BYTES: usize = 400 * 1024;
/// SQS's message size limit (the queues' default maximum).
pub const SQS_MESSAGE_MAX_BYTES: usize = 256 * 1024;
/// The outcome event's limit (SQS message / EventBridge entry).
pub const OUTCOME_EVENT_MAX_BYTES: usize = 256 * 1024;
/// Lambda's synchronous response payload limit.
pub const LAMBDA_RESPONSE_MAX_BYTES: usize = 6 * 1024 * 1024;
/// Lambda's synchronous request payload (event) limit.
pub const LAMBDA_REQUEST_MAX_BYTES: usize = 6 * 1024 * 1024;
/// API Gateway HTTP API's request payload limit.
pub const API_GATEWAY_PAYLOAD_MAX_BYTES: usize = 10 * 1024 * 1024;

/// What a guard item holds besides its record (key, index and bookkeeping attributes, the
/// callback id lists at their caps), counted against the item limit.
pub const GUARD_ITEM_OVERHEAD_BYTES: usize = 4 * 1024;

/// Refuses a guard whose item would exceed DynamoDB's limit (`record_len`: its JSON).
pub fn check_guard_item(id: &str, record_len: usize) -> Result<(), StoreError> {
    check(
        &format!("the guard item of {id}"),
        record_len + GUARD_ITEM_OVERHEAD_BYTES,
        DYNAMODB_ITEM_MAX_BYTES,
    )
}

/// Refuses `what` of `size` bytes over `limit`, as the AWS service would.
pub fn check(what: &str, size: usize, limit: usize) -> Result<(), StoreError> {
    if size > limit {
        return Err(StoreError::TooLarge(format!(
            "{what} of {size} bytes exceeds the {limit}-byte limit"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_limit_is_refused_with_the_figures() {
        assert!(check("item", 10, 10).is_ok());
        let e = check("a DynamoDB item", 500_000, DYNAMODB_ITEM_MAX_BYTES)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("500000 bytes") && e.contains("409600"), "{e}");
    }
}
