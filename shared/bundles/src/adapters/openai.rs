//! OpenAI (images and chat): immediate answers; errors are `{error:{message,type,param,code}}`.
//! A 429 has two meanings: `rate_limit_exceeded` (retry) and `insufficient_quota` (our account
//! is out of credit: not retryable, a platform configuration problem). A chat message that calls
//! tools (`content: null`, `tool_calls`) is a success whose output is the tool calls as JSON.

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
        // What only Rust does; statuses and codes are the provider file's `errors`.
        &[
            (
                "HTTP 400 with `param`",
                "validation_error",
                "the field is `/param`",
            ),
            (
                "HTTP 429",
                "rate_limited",
                "retried after `retry-after-ms` / `retry-after`",
            ),
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
        // The class by status; the provider file's rules refine it by code
        // (`insufficient_quota`, `content_policy_violation`, ...).
        let class = class_of_status(resp.status);
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
                .flat_map(|c| chat_outputs(&c["message"]))
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
                let mut usage = json!({"input_tokens": u["input_tokens"], "output_tokens": u["output_tokens"], "total_tokens": u["total_tokens"]});
                // GPT image models split the input (openai-python `ImagesResponse.Usage.
                // input_tokens_details {text_tokens, image_tokens}`): priced apart.
                let details = &u["input_tokens_details"];
                if details.is_object() {
                    usage["input_text_tokens"] = details["text_tokens"].clone();
                    usage["input_image_tokens"] = details["image_tokens"].clone();
                }
                usage
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

/// The outputs of one chat message: its text, and its tool calls as one JSON output (OpenAI's
/// `tool_calls` array as sent). A message that calls tools has `content: null` and
/// `finish_reason: "tool_calls"` (openai-python `ChatCompletionMessage`: `content:
/// Optional[str]`, `tool_calls: Optional[List[...]]`): the tool calls are its result.
fn chat_outputs(message: &Value) -> Vec<Output> {
    let output = |kind, data: Value, mime: &str| Output {
        kind,
        url: None,
        data: Some(data),
        mime_type: Some(mime.into()),
        width: None,
        height: None,
        duration_seconds: None,
    };
    let mut out = Vec::new();
    if let Some(text) = message["content"].as_str() {
        out.push(output(OutputKind::Text, json!(text), "text/plain"));
    }
    if let Some(calls) = message["tool_calls"].as_array().filter(|c| !c.is_empty()) {
        out.push(output(
            OutputKind::Json,
            Value::Array(calls.clone()),
            "application/json",
        ));
    }
    out
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
        let f = crate::adapters::classified(&OpenAi, "openai", &rate);
        assert_eq!(f.class, ErrorClass::RateLimited);
        assert_eq!(f.retry_after_ms, Some(2000));
        let quota = resp(
            429,
            json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
        );
        assert_eq!(
            crate::adapters::classified(&OpenAi, "openai", &quota).class,
            ErrorClass::PipelineConfiguration
        );
    }

    #[test]
    fn content_policy_and_validation() {
        let cp = resp(
            400,
            json!({"error": {"message": "Your request was rejected as a result of our safety system.", "type": "invalid_request_error", "param": null, "code": "content_policy_violation"}}),
        );
        assert_eq!(
            crate::adapters::classified(&OpenAi, "openai", &cp).class,
            ErrorClass::ContentPolicy
        );
        let v = resp(
            400,
            json!({"error": {"message": "Invalid size", "type": "invalid_request_error", "param": "size", "code": null}}),
        );
        let f = crate::adapters::classified(&OpenAi, "openai", &v);
        assert_eq!(f.class, ErrorClass::ValidationError);
        assert_eq!(f.field.as_deref(), Some("/size"));
        let key = resp(
            401,
            json!({"error": {"message": "Incorrect API key provided: kk.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
        );
        assert_eq!(
            crate::adapters::classified(&OpenAi, "openai", &key).class,
            ErrorClass::PipelineConfiguration
        );
    }

    /// The shape of OpenAI's function-calling answer (openai/openai-openapi `createChatCompletion`
    /// example "Functions"; openai-python `ChatCompletionMessage.content: Optional[str]`,
    /// `tool_calls: Optional[List[...]]`): no text, the tool calls instead.
    fn tool_call_completion() -> Value {
        json!({"id": "chatcmpl-abc123", "object": "chat.completion", "created": 1699896916, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null, "annotations": [],
                "tool_calls": [{"id": "call_abc123", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\n\"location\": \"Boston, MA\"\n}"}}]},
                "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}})
    }

    #[test]
    fn chat_tool_calls_are_a_json_output_with_their_token_cost() {
        let res = OpenAi
            .normalize_immediate(&resp(200, tool_call_completion()), &Value::Null)
            .unwrap();
        assert_eq!(res.outputs.len(), 1, "{:?}", res.outputs);
        let out = &res.outputs[0];
        assert_eq!(out.kind, OutputKind::Json);
        assert_eq!(out.mime_type.as_deref(), Some("application/json"));
        let data = out.data.as_ref().unwrap();
        assert_eq!(data[0]["id"], "call_abc123");
        assert_eq!(data[0]["function"]["name"], "get_current_weather");
        assert_eq!(res.usage["input_tokens"], 82);
        assert_eq!(res.usage["output_tokens"], 17);
        let pricing = crate::format::Pricing::PerToken {
            input_usd_per_million: 0.15,
            output_usd_per_million: 0.6,
            image_input_usd_per_million: None,
        };
        // 82 × 0.15 + 17 × 0.6 micro-dollars.
        assert_eq!(
            crate::pricing::compute(&pricing, &res).provider_usd_micros,
            22
        );
    }

    #[test]
    fn chat_text_and_tool_calls_keep_both() {
        let mut body = tool_call_completion();
        body["choices"][0]["message"]["content"] = json!("Let me look that up.");
        let res = OpenAi
            .normalize_immediate(&resp(200, body), &Value::Null)
            .unwrap();
        let kinds: Vec<OutputKind> = res.outputs.iter().map(|o| o.kind).collect();
        assert_eq!(kinds, vec![OutputKind::Text, OutputKind::Json]);
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
