//! Each adapter's error classification, fed the providers' documented error bodies
//! (`providers.md`): the taxonomy class, the provider code, the HTTP status, the field of a
//! validation error and the provider's requested wait. The class is what the driver makes
//! of the adapter's failure with the provider file's `errors` rules
//! (`bundles/providers/<provider>.yaml`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_bundles::adapters::{by_name, runway};
use executor_bundles::http::HttpResponse;
use executor_lifecycle::{ErrorClass, Failure, PollOutcome};
use serde_json::{Map, Value, json};

fn resp(status: u16, headers: &[(&str, &str)], body: Value) -> HttpResponse {
    let mut h = Map::new();
    for (k, v) in headers {
        h.insert(k.to_ascii_lowercase(), json!(v));
    }
    HttpResponse {
        status,
        headers: h,
        body,
    }
}

/// The provider file of an adapter's provider (each adapter is named after its provider).
fn provider_file(name: &str) -> executor_bundles::compose::ProviderFile {
    let path = format!(
        "{}/../../bundles/providers/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn classify(adapter: &str, r: HttpResponse) -> Failure {
    let file = provider_file(adapter);
    executor_bundles::rules::classify_http(
        &file.error_fields,
        &file.errors,
        &r,
        by_name(adapter).unwrap().classify_error(&r),
    )
}

/// A failed job's failure with the provider file's rules applied.
fn job_failure(adapter: &str, outcome: PollOutcome) -> PollOutcome {
    match outcome {
        PollOutcome::Failed { failure, raw } => PollOutcome::Failed {
            failure: executor_bundles::rules::classify_job(&provider_file(adapter).errors, failure),
            raw,
        },
        other => other,
    }
}

#[test]
fn unknown_adapters_do_not_exist() {
    assert!(by_name("kling").is_none());
    for name in executor_bundles::adapters::NAMES {
        assert_eq!(by_name(name).unwrap().name(), name);
    }
}

#[test]
fn openai_errors() {
    let rate = classify(
        "openai",
        resp(
            429,
            &[("retry-after-ms", "1500"), ("retry-after", "2")],
            json!({"error": {"message": "Rate limit reached for gpt-image-1 in organization org-x on tokens per min (TPM): Limit 30000, Used 30000. Please try again in 26.604s.", "type": "tokens", "param": null, "code": "rate_limit_exceeded"}}),
        ),
    );
    assert_eq!(rate.class, ErrorClass::RateLimited);
    assert_eq!(rate.retry_after_ms, Some(1500), "retry-after-ms wins");
    assert_eq!(rate.provider_code.as_deref(), Some("rate_limit_exceeded"));
    let quota = classify(
        "openai",
        resp(
            429,
            &[],
            json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
        ),
    );
    assert_eq!(quota.class, ErrorClass::PipelineConfiguration);
    assert!(!quota.class.is_retryable());
    let moderated = classify(
        "openai",
        resp(
            400,
            &[],
            json!({"error": {"message": "Your request was rejected as a result of our safety system.", "type": "image_generation_user_error", "param": null, "code": "moderation_blocked"}}),
        ),
    );
    assert_eq!(moderated.class, ErrorClass::ContentPolicy);
    let overloaded = classify(
        "openai",
        resp(
            503,
            &[],
            json!({"error": {"message": "The engine is currently overloaded, please try again later", "type": "server_error", "param": null, "code": null}}),
        ),
    );
    assert_eq!(overloaded.class, ErrorClass::ProviderUnavailable);
    let server = classify(
        "openai",
        resp(
            500,
            &[],
            json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}}),
        ),
    );
    assert_eq!(server.class, ErrorClass::ProviderTransient);
}

#[test]
fn replicate_problem_json_errors() {
    let cases = [
        (
            401,
            json!({"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}),
            ErrorClass::PipelineConfiguration,
        ),
        (
            402,
            json!({"title": "Billing required", "detail": "You need to set up billing", "status": 402}),
            ErrorClass::PipelineConfiguration,
        ),
        (
            422,
            json!({"title": "Invalid version or not permitted", "detail": "The specified version does not exist (or perhaps you don't have permission to use it?)", "status": 422}),
            // Our configuration (model version or token), not the customer's input.
            ErrorClass::PipelineConfiguration,
        ),
        (
            500,
            json!({"detail": "Internal server error"}),
            ErrorClass::ProviderTransient,
        ),
        (
            503,
            json!({"detail": "Service Unavailable"}),
            ErrorClass::ProviderUnavailable,
        ),
    ];
    for (status, body, class) in cases {
        let f = classify("replicate", resp(status, &[], body));
        assert_eq!(f.class, class, "{status}: {f:?}");
        assert_eq!(f.http_status, Some(status));
    }
    let throttled = classify(
        "replicate",
        resp(
            429,
            &[("Retry-After", "30")],
            json!({"detail": "Request was throttled. Your rate limit resets in ~30s."}),
        ),
    );
    assert_eq!(throttled.class, ErrorClass::RateLimited);
    assert_eq!(throttled.retry_after_ms, Some(30_000));
    assert!(throttled.message.contains("throttled"));
}

#[test]
fn runway_http_errors_and_task_failures() {
    let v = classify(
        "runway",
        resp(
            400,
            &[],
            json!({"error": "Validation of body failed: promptImage: Only HTTPS URLs are allowed."}),
        ),
    );
    assert_eq!(v.class, ErrorClass::ValidationError);
    assert_eq!(v.field.as_deref(), Some("/promptImage"));
    for (status, class) in [
        (401, ErrorClass::PipelineConfiguration),
        (429, ErrorClass::RateLimited),
        (502, ErrorClass::ProviderUnavailable),
        (503, ErrorClass::ProviderUnavailable),
        (504, ErrorClass::Timeout),
    ] {
        let f = classify("runway", resp(status, &[], json!({"error": "x"})));
        assert_eq!(f.class, class, "{status}");
    }
    for (code, class) in [
        ("SAFETY.INPUT.TEXT", ErrorClass::ContentPolicy),
        ("SAFETY.OUTPUT.VIDEO", ErrorClass::ContentPolicy),
        ("INPUT_PREPROCESSING.SAFETY.TEXT", ErrorClass::ContentPolicy),
        ("INTERNAL.BAD_OUTPUT.CODE01", ErrorClass::ProviderTransient),
        (
            "INPUT_PREPROCESSING.INTERNAL",
            ErrorClass::ProviderTransient,
        ),
    ] {
        let task = json!({"id": "t", "status": "FAILED", "createdAt": "2024-11-06T00:00:00Z",
            "failure": "The task failed.", "failureCode": code});
        match job_failure("runway", runway::interpret_task(&task, Some(5.0))) {
            PollOutcome::Failed { failure, .. } => {
                assert_eq!(failure.class, class, "{code}");
                assert_eq!(failure.provider_code.as_deref(), Some(code));
            }
            other => panic!("{code}: {other:?}"),
        }
    }
    let running = json!({"id": "t", "status": "RUNNING", "createdAt": "x", "progress": 0.4});
    assert!(matches!(
        runway::interpret_task(&running, None),
        PollOutcome::Pending { progress: Some(p), started: true, .. } if (p - 0.4).abs() < 1e-9
    ));
}

#[test]
fn fal_request_and_model_errors() {
    let t = classify(
        "fal",
        resp(
            504,
            &[("X-Fal-Error-Type", "request_timeout")],
            json!({"detail": "Request timed out", "error_type": "request_timeout"}),
        ),
    );
    assert_eq!(t.class, ErrorClass::Timeout);
    assert_eq!(t.provider_code.as_deref(), Some("request_timeout"));
    let header_only = classify(
        "fal",
        resp(
            503,
            &[("X-Fal-Error-Type", "runner_scheduling_failure")],
            json!({"detail": "Could not schedule a runner"}),
        ),
    );
    assert_eq!(header_only.class, ErrorClass::ProviderUnavailable);
    let model = classify(
        "fal",
        resp(
            422,
            &[],
            json!({"detail": [{"loc": ["body", "image_url"], "msg": "Image too large", "type": "image_too_large", "url": "https://docs.fal.ai/errors#image_too_large"}]}),
        ),
    );
    assert_eq!(model.class, ErrorClass::ValidationError);
    assert_eq!(model.field.as_deref(), Some("/image_url"));
    assert_eq!(model.provider_code.as_deref(), Some("image_too_large"));
    let cancelled = classify(
        "fal",
        resp(
            499,
            &[],
            json!({"detail": "Request was cancelled by the client", "error_type": "client_cancelled"}),
        ),
    );
    assert_eq!(cancelled.class, ErrorClass::Canceled);
}
