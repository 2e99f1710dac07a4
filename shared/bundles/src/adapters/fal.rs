//! fal (queue API): submit returns `request_id`; status is IN_QUEUE, IN_PROGRESS or COMPLETED —
//! and COMPLETED may carry `error`/`error_type` (not success!; `"error": null` is no error).
//! The result is a separate GET, which can itself answer 422 with a FastAPI `detail` list.
//! Webhooks are Ed25519-signed over `request_id\nuser_id\ntimestamp\nsha256hex(body)`.

use super::{Adapter, CallbackKeys, class_of_status, output_from_url, short};
use crate::engine::{RunEnd, StepRun};
use crate::http::HttpResponse;
use base64::Engine as _;
use executor_lifecycle::{
    CallbackVerdict, ErrorClass, Failure, Output, OutputKind, PollOutcome, ProviderResult,
    VerifiedCallback,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The fal adapter.
pub struct Fal;

/// The class of an error type in Rust: what the provider file's rules (exact types) cannot
/// say. The rules then refine it by the type.
fn class_of_error_type(t: &str, status: u16) -> ErrorClass {
    match t {
        // The cancel we asked for.
        "client_cancelled" => ErrorClass::Canceled,
        // Variants of the documented `content_policy_violation` (a rule matches exact types).
        t if t.contains("content_policy") || t.contains("nsfw") => ErrorClass::ContentPolicy,
        _ => class_of_status(status),
    }
}

impl Adapter for Fal {
    fn name(&self) -> &'static str {
        "fal"
    }

    fn error_table(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        // What only Rust does; error types and statuses are the provider file's `errors`.
        &[
            (
                "HTTP 422 `detail[]`",
                "validation_error / content_policy",
                "the field is the first `loc` (without `body`)",
            ),
            (
                "an error type containing `content_policy` or `nsfw`",
                "content_policy",
                "undocumented variants of `content_policy_violation`",
            ),
            (
                "error type `client_cancelled`",
                "canceled",
                "the cancel we asked for (a COMPLETED status with it is a canceled job)",
            ),
            (
                "an error type no rule names",
                "(by status)",
                "a COMPLETED status as a 500 (provider_transient)",
            ),
            (
                "webhook `ERROR` whose text has `422`",
                "validation_error",
                "other webhook errors provider_fatal",
            ),
        ]
    }

    fn classify_error(&self, resp: &HttpResponse) -> Failure {
        let b = &resp.body;
        if let Some(items) = b["detail"].as_array() {
            let first = items.first().cloned().unwrap_or(Value::Null);
            let t = first["type"].as_str().unwrap_or("");
            let class = if t.contains("content_policy") || t.contains("nsfw") {
                ErrorClass::ContentPolicy
            } else {
                class_of_status(resp.status)
            };
            let mut f = Failure::new(
                class,
                short(first["msg"].as_str().unwrap_or("fal rejected the input")),
            )
            .with_status(resp.status);
            if !t.is_empty() {
                f = f.with_code(t);
            }
            let loc: Vec<String> = first["loc"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .filter(|x| x != "body")
                        .collect()
                })
                .unwrap_or_default();
            if class == ErrorClass::ValidationError || !loc.is_empty() {
                f.field = Some(format!("/{}", loc.join("/")));
            }
            return f;
        }
        let t = b["error_type"]
            .as_str()
            .or(resp.header("x-fal-error-type"))
            .unwrap_or("");
        let mut f = Failure::new(
            class_of_error_type(t, resp.status),
            short(b["detail"].as_str().unwrap_or("fal returned an error")),
        )
        .with_status(resp.status)
        .with_retry_after_ms(resp.retry_after_ms());
        if !t.is_empty() {
            f = f.with_code(t);
        }
        f
    }

    fn job_id(&self, resp: &HttpResponse) -> Option<String> {
        resp.body["request_id"].as_str().map(str::to_string)
    }

    fn interpret_poll(&self, run: &StepRun) -> PollOutcome {
        // A failing result GET after COMPLETED is the job's failure, not a call failure.
        if let RunEnd::HttpFailed { step, response } = &run.end
            && run
                .responses
                .get("status")
                .is_some_and(|s| s.body["status"] == "COMPLETED")
            && step != "status"
        {
            let failure = self.classify_error(response);
            return PollOutcome::Failed {
                failure,
                raw: response.body.clone(),
            };
        }
        if let Some(o) = super::call_failure(self, run) {
            return o;
        }
        let Some(status) = run.responses.get("status").map(|r| &r.body) else {
            return PollOutcome::CallFailed(Failure::new(
                ErrorClass::PipelineConfiguration,
                "fal poll steps must capture a `status` step",
            ));
        };
        match status["status"].as_str().unwrap_or("") {
            "IN_QUEUE" => PollOutcome::Pending {
                provider_status: "IN_QUEUE".into(),
                progress: None,
                started: false,
            },
            "IN_PROGRESS" => PollOutcome::Pending {
                provider_status: "IN_PROGRESS".into(),
                progress: None,
                started: true,
            },
            "COMPLETED" => {
                // A cancel we asked for ends as COMPLETED + `client_cancelled`: the job was
                // canceled, not failed.
                if status["error_type"] == "client_cancelled" {
                    return PollOutcome::Canceled {
                        raw: status.clone(),
                    };
                }
                if let Some(t) = status["error_type"]
                    .as_str()
                    .or(status["error"].as_str().map(|_| ""))
                {
                    let msg = status["error"].as_str().unwrap_or("fal request failed");
                    let mut f = Failure::new(class_of_error_type(t, 500), short(msg));
                    if !t.is_empty() {
                        f = f.with_code(t);
                    }
                    return PollOutcome::Failed {
                        failure: f,
                        raw: status.clone(),
                    };
                }
                match run.responses.get("result") {
                    Some(r) => PollOutcome::Succeeded(normalize(&r.body, status)),
                    None => PollOutcome::CallFailed(Failure::new(
                        ErrorClass::PipelineConfiguration,
                        "fal poll steps must fetch the `result` when COMPLETED",
                    )),
                }
            }
            other => PollOutcome::CallFailed(Failure::new(
                ErrorClass::ProviderTransient,
                format!("unknown fal status {other:?}"),
            )),
        }
    }

    fn supports_callbacks(&self) -> bool {
        true
    }

    fn verify_callback(
        &self,
        keys: &CallbackKeys,
        headers: &[(String, String)],
        body: &[u8],
        now_ms: i64,
    ) -> Result<VerifiedCallback, Failure> {
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        };
        let fail = |m: &str| Failure::new(ErrorClass::CallbackFailure, format!("fal webhook: {m}"));
        let request_id = get("x-fal-webhook-request-id")
            .ok_or_else(|| fail("missing X-Fal-Webhook-Request-Id"))?;
        let user_id =
            get("x-fal-webhook-user-id").ok_or_else(|| fail("missing X-Fal-Webhook-User-Id"))?;
        let ts = get("x-fal-webhook-timestamp")
            .ok_or_else(|| fail("missing X-Fal-Webhook-Timestamp"))?;
        let sig_hex = get("x-fal-webhook-signature")
            .ok_or_else(|| fail("missing X-Fal-Webhook-Signature"))?;
        let t: i64 = ts.parse().map_err(|_| fail("bad timestamp"))?;
        if (now_ms / 1000 - t).abs() > 300 {
            return Err(fail("timestamp outside the tolerance"));
        }
        let msg = format!(
            "{request_id}\n{user_id}\n{ts}\n{}",
            hex::encode(Sha256::digest(body))
        );
        let sig_bytes: [u8; 64] = hex::decode(sig_hex)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| fail("bad signature encoding"))?;
        let sig = ed25519_dalek::Signature::from_bytes(&sig_bytes);
        let verified = keys.fal_public_keys.iter().any(|k| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(k.trim_end_matches('='))
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
                .is_some_and(|vk| vk.verify_strict(msg.as_bytes(), &sig).is_ok())
        });
        if !verified {
            return Err(fail("no matching signature"));
        }
        let payload: Value = serde_json::from_slice(body).map_err(|_| fail("body is not JSON"))?;
        // The signature covers the header's request id; the body must be about the same job.
        if let Some(in_body) = payload["request_id"].as_str()
            && in_body != request_id
        {
            return Err(fail("the body's request_id is not the signed request id"));
        }
        Ok(VerifiedCallback {
            callback_id: format!("{request_id}-{}", &hex::encode(Sha256::digest(body))[..16]),
            payload,
        })
    }

    fn callback_job_id(&self, payload: &Value) -> Option<String> {
        payload["request_id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    fn interpret_callback(&self, payload: &Value) -> CallbackVerdict {
        match payload["status"].as_str() {
            Some("OK") => CallbackVerdict::Outcome(PollOutcome::Succeeded(normalize(
                &payload["payload"],
                &Value::Null,
            ))),
            Some("ERROR") => {
                let msg = payload["error"].as_str().unwrap_or("fal request failed");
                let class = if msg.contains("422") {
                    ErrorClass::ValidationError
                } else {
                    ErrorClass::ProviderFatal
                };
                CallbackVerdict::Outcome(PollOutcome::Failed {
                    failure: Failure::new(class, short(msg)),
                    raw: payload.clone(),
                })
            }
            _ => CallbackVerdict::NeedsPoll,
        }
    }
}

fn normalize(result: &Value, status: &Value) -> ProviderResult {
    let mut outputs: Vec<Output> = result["images"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| {
                    let url = i["url"].as_str()?;
                    let mut o = output_from_url(url, OutputKind::Image);
                    o.width = i["width"].as_u64().map(|w| w as u32);
                    o.height = i["height"].as_u64().map(|h| h as u32);
                    if let Some(ct) = i["content_type"].as_str() {
                        o.mime_type = Some(ct.to_string());
                    }
                    Some(o)
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(url) = result["video"]["url"].as_str() {
        outputs.push(output_from_url(url, OutputKind::Video));
    }
    let usage =
        json!({"outputs": outputs.len(), "inference_time": status["metrics"]["inference_time"]});
    ProviderResult {
        outputs,
        usage,
        raw: result.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn completed_with_error_is_a_failure() {
        let mut responses = std::collections::BTreeMap::new();
        responses.insert("status".to_string(), HttpResponse { status: 200, headers: Map::new(), body: json!({"status": "COMPLETED", "error": "Runner disconnected", "error_type": "runner_disconnected"}) });
        let run = StepRun {
            end: RunEnd::Completed,
            responses,
            last_http: Some("status".into()),
            calls: vec![],
            events: vec![],
            rehosted: vec![],
            ctx: json!({}),
        };
        assert!(
            matches!(crate::adapters::job_failed("fal", Fal.interpret_poll(&run)), PollOutcome::Failed { failure, .. } if failure.class == ErrorClass::ProviderUnavailable)
        );
    }

    #[test]
    fn completed_with_null_error_is_a_success() {
        let ok = |body: Value| HttpResponse {
            status: 200,
            headers: Map::new(),
            body,
        };
        let mut responses = std::collections::BTreeMap::new();
        responses.insert("status".to_string(), ok(json!({"status": "COMPLETED", "logs": null, "metrics": {"inference_time": 0.3}, "error": null, "error_type": null})));
        responses.insert("result".to_string(), ok(json!({"images": [{"url": "https://v3.fal.media/files/x/out.png", "width": 1024, "height": 768, "content_type": "image/png"}], "seed": 1})));
        let run = StepRun {
            end: RunEnd::Completed,
            responses,
            last_http: Some("result".into()),
            calls: vec![],
            events: vec![],
            rehosted: vec![],
            ctx: json!({}),
        };
        match Fal.interpret_poll(&run) {
            PollOutcome::Succeeded(r) => {
                assert_eq!(r.outputs.len(), 1);
                assert_eq!(r.usage["inference_time"], 0.3);
            }
            other => unreachable!("{other:?}"),
        }
    }
}
