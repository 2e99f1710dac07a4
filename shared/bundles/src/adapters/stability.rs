//! Stability AI (v2beta Stable Image): immediate, multipart requests, the image as raw bytes
//! (`accept: image/*`) or as JSON `{image, seed, finish_reason}` (`accept: application/json`).
//! Errors are `{id, name, errors: [string]}`. The trap: `finish-reason: CONTENT_FILTERED`
//! arrives with HTTP 200 and a blurred image — a content-policy failure, not a success.
//! Credits are flat per generation and not in the answer: the bundle's pricing holds them.

use super::{Adapter, class_of_status, short};
use crate::engine::StepRun;
use crate::http::HttpResponse;
use executor_lifecycle::{ErrorClass, Failure, Output, OutputKind, PollOutcome, ProviderResult};
use serde_json::{Value, json};

/// The Stability adapter.
pub struct Stability;

/// The image and its facts from either answer form.
fn image_of(resp: &HttpResponse) -> Option<(String, String, Option<String>, Value)> {
    let body = &resp.body;
    if let Some(b64) = body["body_base64"].as_str() {
        let mime = body["content_type"].as_str().unwrap_or("image/png");
        let mime = mime.split(';').next().unwrap_or(mime).trim().to_string();
        return Some((
            b64.to_string(),
            mime,
            resp.header("finish-reason").map(str::to_string),
            resp.header("seed")
                .and_then(|s| s.parse::<u64>().ok())
                .map_or(Value::Null, |n| json!(n)),
        ));
    }
    let b64 = body["image"].as_str()?;
    // `application/json; type=image/png`
    let mime = resp
        .header("content-type")
        .and_then(|c| c.split("type=").nth(1))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|| "image/png".into());
    Some((
        b64.to_string(),
        mime,
        body["finish_reason"].as_str().map(str::to_string),
        body["seed"].clone(),
    ))
}

impl Adapter for Stability {
    fn name(&self) -> &'static str {
        "stability"
    }

    fn error_table(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        // What only Rust does; error answers are the provider file's `errors`.
        &[
            (
                "HTTP 200 `finish-reason: CONTENT_FILTERED`",
                "content_policy",
                "a blurred image is not a result (a success answer: rules read error answers)",
            ),
            (
                "HTTP 400 `prompt: ...`",
                "validation_error",
                "the field is the word before the message's first colon",
            ),
            (
                "HTTP 413 `payload_too_large`",
                "validation_error",
                "the message names the size limit; no field",
            ),
            (
                "HTTP 429",
                "rate_limited",
                "retried after 60 s when no header says otherwise (the documented lock-out)",
            ),
            ("HTTP 200 with an empty body", "partial_result", ""),
        ]
    }

    fn classify_error(&self, resp: &HttpResponse) -> Failure {
        let name = resp.body["name"].as_str().unwrap_or("").to_string();
        let first = resp.body["errors"]
            .as_array()
            .and_then(|e| e.first())
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| resp.body.as_str().map(str::to_string))
            .unwrap_or_else(|| "Stability AI returned an error".into());
        // The class by status; the provider file's rules refine it by `name`.
        let class = class_of_status(resp.status);
        // 413 `payload_too_large` ("body: payloads cannot be larger than 10MiB in size") is
        // about the whole request body's size, not an input field named `body`.
        let too_large = resp.status == 413 || name == "payload_too_large";
        let message = if too_large {
            let limit = first.strip_prefix("body:").unwrap_or(&first).trim();
            format!("the request body is too large for Stability AI: {limit}")
        } else {
            first.clone()
        };
        let mut f = Failure::new(class, short(&message)).with_status(resp.status);
        // The documented lock-out after a rate limit is 60 s; no header says so.
        f = f.with_retry_after_ms(
            resp.retry_after_ms()
                .or((class == ErrorClass::RateLimited).then_some(60_000)),
        );
        if !name.is_empty() {
            f = f.with_code(name);
        }
        if class == ErrorClass::ValidationError && !too_large {
            // Messages name the field first: "prompt: cannot be empty".
            let field = first
                .split_once(':')
                .map(|(f, _)| f.trim())
                .filter(|f| !f.is_empty() && !f.contains(' '))
                .unwrap_or("");
            f.field = Some(format!("/{field}"));
        }
        f
    }

    fn job_id(&self, resp: &HttpResponse) -> Option<String> {
        resp.header("x-request-id")
            .or(resp.body["id"].as_str())
            .map(str::to_string)
    }

    fn supports_immediate(&self) -> bool {
        true
    }

    fn normalize_immediate(
        &self,
        resp: &HttpResponse,
        input: &Value,
    ) -> Result<ProviderResult, Failure> {
        let _ = input;
        let raw_facts = json!({
            "x-request-id": resp.header("x-request-id"),
            "finish_reason": resp.header("finish-reason").map(str::to_string).or(resp.body["finish_reason"].as_str().map(str::to_string)),
        });
        let Some((b64, mime, finish, seed)) = image_of(resp) else {
            // 200 with nothing in it: an empty result (the lifecycle calls it partial_result).
            return Ok(ProviderResult {
                outputs: vec![],
                usage: json!({"images": 0}),
                raw: raw_facts,
            });
        };
        if finish.as_deref() == Some("CONTENT_FILTERED") {
            return Err(Failure::new(
                ErrorClass::ContentPolicy,
                "the output violated Stability's content moderation policy and was blurred",
            )
            .with_status(resp.status)
            .with_code("CONTENT_FILTERED"));
        }
        let (width, height) = dims(&b64);
        let output = Output {
            kind: OutputKind::Image,
            url: None,
            data: Some(json!(b64)),
            mime_type: Some(mime.clone()),
            width,
            height,
            duration_seconds: None,
        };
        Ok(ProviderResult {
            outputs: vec![output],
            usage: json!({"images": 1, "seed": seed}),
            raw: json!({"finish_reason": finish, "seed": seed, "content_type": mime, "x-request-id": resp.header("x-request-id")}),
        })
    }

    fn interpret_poll(&self, run: &StepRun) -> PollOutcome {
        super::call_failure(self, run).unwrap_or_else(|| {
            PollOutcome::CallFailed(Failure::new(
                ErrorClass::PipelineConfiguration,
                "Stability image generation is immediate; nothing to poll",
            ))
        })
    }
}

/// Width and height from the image header, when it is readable.
fn dims(b64: &str) -> (Option<u32>, Option<u32>) {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .and_then(|b| crate::media::dimensions(&b).ok())
        .map_or((None, None), |(w, h, _)| (Some(w), Some(h)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::Map;

    fn resp(status: u16, headers: &[(&str, &str)], body: Value) -> HttpResponse {
        let mut h = Map::new();
        for (k, v) in headers {
            h.insert(k.to_string(), json!(v));
        }
        HttpResponse {
            status,
            headers: h,
            body,
        }
    }

    #[test]
    fn a_filtered_200_is_a_content_policy_failure() {
        let r = resp(
            200,
            &[("finish-reason", "CONTENT_FILTERED"), ("seed", "42")],
            json!({"body_base64": "iVBORw0KGgo=", "content_type": "image/png", "size": 8}),
        );
        let f = Stability.normalize_immediate(&r, &Value::Null).unwrap_err();
        assert_eq!(f.class, ErrorClass::ContentPolicy);
        let json_form = resp(
            200,
            &[("content-type", "application/json; type=image/png")],
            json!({"image": "iVBORw0KGgo=", "seed": 42, "finish_reason": "CONTENT_FILTERED"}),
        );
        assert_eq!(
            Stability
                .normalize_immediate(&json_form, &Value::Null)
                .unwrap_err()
                .class,
            ErrorClass::ContentPolicy
        );
    }

    #[test]
    fn errors_by_name() {
        let rl = resp(
            429,
            &[],
            json!({"id": "rate_limit_exceeded", "name": "rate_limit_exceeded", "errors": ["You have exceeded the rate limit of 150 requests within a 10 second period, and have been timed out for 60 seconds."]}),
        );
        let f = crate::adapters::classified(&Stability, "stability", &rl);
        assert_eq!(f.class, ErrorClass::RateLimited);
        assert_eq!(f.retry_after_ms, Some(60_000));
        let bad = resp(
            400,
            &[],
            json!({"id": "a1b2", "name": "bad_request", "errors": ["prompt: cannot be empty"]}),
        );
        let f = crate::adapters::classified(&Stability, "stability", &bad);
        assert_eq!(f.class, ErrorClass::ValidationError);
        assert_eq!(f.field.as_deref(), Some("/prompt"));
        let pay = resp(
            402,
            &[],
            json!({"id": "c3", "name": "payment_required", "errors": ["You lack sufficient credits to make this request."]}),
        );
        assert_eq!(
            crate::adapters::classified(&Stability, "stability", &pay).class,
            ErrorClass::PipelineConfiguration
        );
        let pf = resp(
            422,
            &[],
            json!({"id": "d4", "name": "public_figure", "errors": ["Our system detected the likeness of a public figure in your image."]}),
        );
        assert_eq!(
            crate::adapters::classified(&Stability, "stability", &pf).class,
            ErrorClass::ContentPolicy
        );
    }

    #[test]
    fn payload_too_large_names_the_body_size_not_a_field() {
        // The v2beta spec's 413 example ("Your request was larger than 10MiB."; tryAGI/StabilityAI
        // openapi.yaml, /v2beta/stable-image/generate/ultra).
        let big = resp(
            413,
            &[],
            json!({"id": "4212a4b66fbe1cedca4bf2133d35dca5", "name": "payload_too_large", "errors": ["body: payloads cannot be larger than 10MiB in size"]}),
        );
        let f = crate::adapters::classified(&Stability, "stability", &big);
        assert_eq!(f.class, ErrorClass::ValidationError);
        assert_eq!(f.field, None, "{f:?}");
        assert_eq!(f.provider_code.as_deref(), Some("payload_too_large"));
        assert_eq!(f.http_status, Some(413));
        assert!(
            f.message.contains("request body") && f.message.contains("10MiB"),
            "{}",
            f.message
        );
    }
}
