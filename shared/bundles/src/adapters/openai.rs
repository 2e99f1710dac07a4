//! OpenAI (images and chat): immediate answers; errors are `{error:{message,type,param,code}}`.
//! A 429 has two meanings: `rate_limit_exceeded` (retry) and `insufficient_quota` (our account
//! is out of credit: not retryable, a platform configuration problem).

use super::{Adapter, class_of_status, short};
use crate::engine::StepRun;
use crate::http::HttpResponse;
use executor_lifecycle::{ErrorClass, Failure, Output, OutputKind, PollOutcome, ProviderResult};
use serde_json::{Value, json};

/// The OpenAI adapter.
pub struct OpenAi;

impl Adapter for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn error_table(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &[
            (
                "HTTP 429 `rate_limit_exceeded`",
                "rate_limited",
                "retried after `retry-after-ms`/`retry-after`",
            ),
            (
                "HTTP 429 `insufficient_quota`",
                "pipeline_configuration",
                "our account is out of credit; not retried",
            ),
            (
                "HTTP 400 `content_policy_violation` / `moderation_blocked`",
                "content_policy",
                "the safety system refused the prompt",
            ),
            (
                "HTTP 400 with `param`",
                "validation_error",
                "names the field (`/param`)",
            ),
            (
                "HTTP 401 / 403",
                "pipeline_configuration",
                "bad or unauthorized key",
            ),
            ("HTTP 500", "provider_transient", "retried"),
            ("HTTP 502 / 503", "provider_unavailable", "retried"),
        ]
    }

    fn classify_error(&self, resp: &HttpResponse) -> Failure {
        let e = &resp.body["error"];
        let code = e["code"]
            .as_str()
            .or(e["type"].as_str())
            .unwrap_or("")
            .to_string();
        let message = short(e["message"].as_str().unwrap_or("OpenAI returned an error"));
        let class = match (resp.status, code.as_str()) {
            (429, "insufficient_quota") => ErrorClass::PipelineConfiguration,
            (429, _) => ErrorClass::RateLimited,
            (400, "content_policy_violation" | "moderation_blocked") => ErrorClass::ContentPolicy,
            (s, _) => class_of_status(s),
        };
        let mut f = Failure::new(class, message)
            .with_status(resp.status)
            .with_retry_after_ms(resp.retry_after_ms());
        if !code.is_empty() {
            f = f.with_code(code);
        }
        if class == ErrorClass::ValidationError {
            f.field = Some(
                e["param"]
                    .as_str()
                    .map(|p| format!("/{p}"))
                    .unwrap_or_else(|| "/".into()),
            );
        }
        f
    }

    fn job_id(&self, resp: &HttpResponse) -> Option<String> {
        resp.body["id"]
            .as_str()
            .or(resp.header("x-request-id"))
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
        let body = &resp.body;
        if let Some(choices) = body["choices"].as_array() {
            let outputs = choices
                .iter()
                .filter_map(|c| c["message"]["content"].as_str())
                .map(|text| Output {
                    kind: OutputKind::Text,
                    url: None,
                    data: Some(json!(text)),
                    mime_type: Some("text/plain".into()),
                    width: None,
                    height: None,
                    duration_seconds: None,
                })
                .collect();
            let u = &body["usage"];
            let usage = json!({"input_tokens": u["prompt_tokens"], "output_tokens": u["completion_tokens"], "total_tokens": u["total_tokens"]});
            return Ok(ProviderResult {
                outputs,
                usage,
                raw: body.clone(),
            });
        }
        let Some(data) = body["data"].as_array() else {
            return Err(Failure::new(
                ErrorClass::ProviderFatal,
                "OpenAI answer has neither data nor choices",
            ));
        };
        let format = body["output_format"].as_str().unwrap_or("png");
        let (w, h) = parse_size(body["size"].as_str());
        let outputs = data
            .iter()
            .filter_map(|d| {
                let mut o = Output {
                    kind: OutputKind::Image,
                    url: None,
                    data: None,
                    mime_type: Some(format!("image/{format}")),
                    width: w,
                    height: h,
                    duration_seconds: None,
                };
                if let Some(b64) = d["b64_json"].as_str() {
                    o.data = Some(json!(b64));
                } else if let Some(url) = d["url"].as_str() {
                    o.url = Some(url.to_string());
                } else {
                    return None;
                }
                Some(o)
            })
            .collect();
        let usage = match body.get("usage") {
            Some(u) if !u.is_null() => {
                json!({"input_tokens": u["input_tokens"], "output_tokens": u["output_tokens"], "total_tokens": u["total_tokens"]})
            }
            _ => json!({"images": data.len()}),
        };
        // Keep the raw answer small: the images themselves are in the outputs.
        let mut raw = body.clone();
        if let Some(items) = raw["data"].as_array_mut() {
            for d in items {
                if d.get("b64_json").is_some() {
                    d["b64_json"] = Value::String("<in outputs>".into());
                }
            }
        }
        Ok(ProviderResult {
            outputs,
            usage,
            raw,
        })
    }

    fn interpret_poll(&self, run: &StepRun) -> PollOutcome {
        super::call_failure(self, run).unwrap_or_else(|| {
            PollOutcome::CallFailed(Failure::new(
                ErrorClass::PipelineConfiguration,
                "OpenAI models are immediate; nothing to poll",
            ))
        })
    }
}

fn parse_size(s: Option<&str>) -> (Option<u32>, Option<u32>) {
    match s.and_then(|s| s.split_once('x')) {
        Some((w, h)) => (w.parse().ok(), h.parse().ok()),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::Map;

    fn resp(status: u16, body: Value) -> HttpResponse {
        let mut headers = Map::new();
        headers.insert("retry-after".into(), json!("2"));
        HttpResponse {
            status,
            headers,
            body,
        }
    }

    #[test]
    fn the_two_429s_are_told_apart() {
        let rate = resp(
            429,
            json!({"error": {"message": "Rate limit reached. Please try again in 26.604s.", "type": "tokens", "param": null, "code": "rate_limit_exceeded"}}),
        );
        let f = OpenAi.classify_error(&rate);
        assert_eq!(f.class, ErrorClass::RateLimited);
        assert_eq!(f.retry_after_ms, Some(2000));
        let quota = resp(
            429,
            json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
        );
        assert_eq!(
            OpenAi.classify_error(&quota).class,
            ErrorClass::PipelineConfiguration
        );
    }

    #[test]
    fn content_policy_and_validation() {
        let cp = resp(
            400,
            json!({"error": {"message": "Your request was rejected as a result of our safety system.", "type": "invalid_request_error", "param": null, "code": "content_policy_violation"}}),
        );
        assert_eq!(OpenAi.classify_error(&cp).class, ErrorClass::ContentPolicy);
        let v = resp(
            400,
            json!({"error": {"message": "Invalid size", "type": "invalid_request_error", "param": "size", "code": null}}),
        );
        let f = OpenAi.classify_error(&v);
        assert_eq!(f.class, ErrorClass::ValidationError);
        assert_eq!(f.field.as_deref(), Some("/size"));
        let key = resp(
            401,
            json!({"error": {"message": "Incorrect API key provided: kk.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
        );
        assert_eq!(
            OpenAi.classify_error(&key).class,
            ErrorClass::PipelineConfiguration
        );
    }

    #[test]
    fn images_normalize_with_token_usage() {
        let r = resp(
            200,
            json!({"created": 1, "data": [{"b64_json": "iVBOR"}], "size": "1024x1024", "output_format": "png", "usage": {"total_tokens": 100, "input_tokens": 50, "output_tokens": 50}}),
        );
        let res = OpenAi.normalize_immediate(&r, &Value::Null).unwrap();
        assert_eq!(res.outputs.len(), 1);
        assert_eq!(res.outputs[0].width, Some(1024));
        assert_eq!(res.usage["output_tokens"], 50);
    }
}
