//! One OpenAI-compatible engine for five hosts — Together (`/together/v1`), Fireworks
//! (`/fireworks/inference/v1`), Groq (`/groq/openai/v1`), DeepInfra (`/deepinfra/v1/openai`)
//! and Mistral (`/mistral/v1`) — and the Hugging Face router's chat. Each [`Host`] is a row
//! of data: its base path, its error table, its rate-limit headers and the usage extras it
//! adds; the handler is the same `chat.completion` for all (from `docs/providers/openai-compatible.md`).
//!
//! Chat answers tool calls when the request has `tools` and either `tool_choice` asks for
//! one (`"required"` or a named function) or a string carries `sim:tool_call`:
//! `message.tool_calls[{id, type:"function", function:{name, arguments}}]` with `arguments`
//! a JSON-encoded **string**, `finish_reason: "tool_calls"`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::clock::unix_seconds;
use crate::directives::{Directives, prompt_key};
use crate::engine::{Answer, AuthScheme, Errors, Spec, form_body, text};
use crate::files;
use crate::media::{ImageKind, photo};
use crate::provider::Provider;
use crate::state::SimState;

/// One OpenAI-compatible host.
#[derive(Debug)]
pub struct Host {
    /// Provider, errors and headers.
    pub spec: Spec,
    /// Path of the API base under the provider prefix (`/openai/v1` for Groq).
    pub base: &'static str,
    /// Serves `POST {base}/images/generations` (Together).
    pub images: bool,
    /// Serves `POST {base}/audio/transcriptions` (Groq).
    pub transcriptions: bool,
    /// Adds its own fields to a chat completion (usage extras).
    pub extras: fn(&mut Value),
}

const OPENAI_500: &str = r#"{"error":{"message":"Internal server error","type":"internal_server_error","param":null,"code":null}}"#;
const OPENAI_400: &str = r#"{"error":{"message":"Invalid request: sim:invalid","type":"invalid_request_error","param":"messages","code":null}}"#;
const OPENAI_404: &str = r#"{"error":{"message":"The model does not exist or you do not have access to it.","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#;

/// Together: OpenAI-like `ErrorData`, `param`/`code` may be absent [SPEC]; its own
/// rate-limit header names (`x-ratelimit-*` without suffix, `x-tokenlimit-*`) are 3P, UNCONFIRMED.
pub static TOGETHER: Host = Host {
    spec: Spec {
        provider: Provider::Together,
        auth: AuthScheme::Authorization(&["Bearer"]),
        errors: &Errors {
            unauthorized: Answer {
                status: 401,
                body: r#"{"error":{"message":"Invalid API key provided. You can find your API key at https://api.together.xyz/settings/api-keys.","type":"invalid_request_error","code":"invalid_api_key"}}"#,
                headers: &[],
            },
            rate_limited: Answer {
                status: 429,
                body: r#"{"error":{"message":"You are on tier Build Tier 1, which offers 600 queries and 180000 tokens per minute for this model. Please wait and try again.","type":"model_rate_limit"}}"#,
                headers: &[("retry-after", "1"), ("x-ratelimit-remaining", "0")],
            },
            server_error: Answer {
                status: 503,
                body: r#"{"error":{"message":"The server is overloaded or not ready yet.","type":"service_unavailable"}}"#,
                headers: &[],
            },
            quota: Answer {
                status: 402,
                body: r#"{"error":{"message":"Credit limit exceeded. Please navigate to https://api.together.xyz/settings/billing to add credit or upgrade your plan.","type":"credit_limit"}}"#,
                headers: &[],
            },
            invalid: Answer {
                status: 400,
                body: r#"{"error":{"message":"Input validation error: sim:invalid","type":"invalid_request_error","param":"messages"}}"#,
                headers: &[],
            },
            content_policy: Answer {
                status: 422,
                body: r#"{"error":{"message":"The prompt was flagged by the safety model.","type":"invalid_request_error"}}"#,
                headers: &[],
            },
            not_found: Answer {
                status: 404,
                body: r#"{"error":{"message":"Unable to access model. Please visit https://api.together.ai/models to view the list of supported models.","type":"invalid_request_error","code":"model_not_available"}}"#,
                headers: &[],
            },
            poll_error: Answer {
                status: 503,
                body: r#"{"error":{"message":"The server is overloaded or not ready yet.","type":"service_unavailable"}}"#,
                headers: &[],
            },
        },
        ok_headers: &[
            ("x-ratelimit-limit", "600"),
            ("x-ratelimit-remaining", "599"),
            ("x-ratelimit-reset", "1"),
            ("x-tokenlimit-limit", "180000"),
            ("x-tokenlimit-remaining", "179000"),
        ],
        request_id_header: Some("x-request-id"),
        extra: &[],
    },
    base: "/v1",
    images: true,
    transcriptions: false,
    extras: |_| {},
};

/// Fireworks: 429 above adaptive limits, 503 "Service Overloaded" under load, 402/412 for
/// billing [DOC]; the chat error body is UNCONFIRMED (OpenAI-shaped here).
pub static FIREWORKS: Host = Host {
    spec: Spec {
        provider: Provider::Fireworks,
        auth: AuthScheme::Authorization(&["Bearer"]),
        errors: &Errors {
            unauthorized: Answer {
                status: 401,
                body: r#"{"error":{"object":"error","type":"unauthorized","message":"The API key you provided is invalid."}}"#,
                headers: &[],
            },
            rate_limited: Answer {
                status: 429,
                body: r#"{"error":{"object":"error","type":"rate_limit_exceeded","message":"Rate limit exceeded: generated tokens per minute. Please retry later."}}"#,
                headers: &[("retry-after", "1")],
            },
            server_error: Answer {
                status: 503,
                body: r#"{"error":{"object":"error","type":"service_unavailable","message":"Service Overloaded"}}"#,
                headers: &[],
            },
            quota: Answer {
                status: 402,
                body: r#"{"error":{"object":"error","type":"payment_required","message":"Account is not on a paid plan or is over its spending limit."}}"#,
                headers: &[],
            },
            invalid: Answer {
                status: 400,
                body: r#"{"error":{"object":"error","type":"invalid_request_error","message":"sim:invalid: invalid request"}}"#,
                headers: &[],
            },
            content_policy: Answer {
                status: 400,
                body: r#"{"error":{"object":"error","type":"invalid_request_error","message":"The request was rejected by the content filter."}}"#,
                headers: &[],
            },
            not_found: Answer {
                status: 404,
                body: r#"{"error":{"object":"error","type":"not_found","message":"Model not found, inaccessible, and/or not deployed"}}"#,
                headers: &[],
            },
            poll_error: Answer {
                status: 503,
                body: r#"{"error":{"object":"error","type":"service_unavailable","message":"Service Overloaded"}}"#,
                headers: &[],
            },
        },
        ok_headers: &[
            ("x-ratelimit-limit-tokens-prompt", "6000000"),
            ("x-ratelimit-limit-tokens-generated", "600000"),
            ("x-ratelimit-remaining-tokens-prompt", "5999000"),
            ("x-ratelimit-remaining-tokens-generated", "599000"),
        ],
        request_id_header: Some("x-request-id"),
        extra: &[],
    },
    base: "/inference/v1",
    images: false,
    transcriptions: false,
    extras: |_| {},
};

/// Groq: OpenAI-shaped errors; the documented 429 is a tokens-per-minute one (`type:
/// "tokens"`); `retry-after` only on 429; `x-ratelimit-limit-requests` counts per DAY;
/// `sim:flex_capacity` answers 498 `capacity_exceeded` (Flex tier) [DOC]; usage adds
/// `queue_time`/`prompt_time`/`completion_time`/`total_time` and `x_groq` [SPEC].
pub static GROQ: Host = Host {
    spec: Spec {
        provider: Provider::Groq,
        auth: AuthScheme::Authorization(&["Bearer"]),
        errors: &Errors {
            unauthorized: Answer {
                status: 401,
                body: r#"{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
                headers: &[],
            },
            rate_limited: Answer {
                status: 429,
                body: r#"{"error":{"message":"Rate limit reached for model llama-3.3-70b-versatile in organization org_sim service tier on_demand on tokens per minute (TPM): Limit 12000, Used 11972, Requested 4351. Please try again in 1.289s. Visit https://console.groq.com/docs/rate-limits for more information.","type":"tokens","code":"rate_limit_exceeded"}}"#,
                headers: &[("retry-after", "1"), ("x-ratelimit-remaining-tokens", "0")],
            },
            server_error: Answer {
                status: 500,
                body: OPENAI_500,
                headers: &[],
            },
            quota: Answer {
                status: 429,
                body: r#"{"error":{"message":"Rate limit reached for model llama-3.3-70b-versatile in organization org_sim service tier on_demand on tokens per day (TPD): Limit 100000, Used 100000, Requested 1200. Please try again in 14m24s. Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing","type":"tokens","code":"rate_limit_exceeded"}}"#,
                headers: &[("retry-after", "864")],
            },
            invalid: Answer {
                status: 400,
                body: OPENAI_400,
                headers: &[],
            },
            content_policy: Answer {
                status: 400,
                body: r#"{"error":{"message":"The request was blocked by the content policy.","type":"invalid_request_error","code":"content_policy_violation"}}"#,
                headers: &[],
            },
            not_found: Answer {
                status: 404,
                body: OPENAI_404,
                headers: &[],
            },
            poll_error: Answer {
                status: 503,
                body: r#"{"error":{"message":"Service Unavailable","type":"internal_server_error"}}"#,
                headers: &[],
            },
        },
        ok_headers: &[
            ("x-ratelimit-limit-requests", "14400"),
            ("x-ratelimit-limit-tokens", "12000"),
            ("x-ratelimit-remaining-requests", "14399"),
            ("x-ratelimit-remaining-tokens", "11000"),
            ("x-ratelimit-reset-requests", "6s"),
            ("x-ratelimit-reset-tokens", "5s"),
        ],
        request_id_header: Some("x-request-id"),
        extra: &[(
            "flex_capacity",
            Answer {
                status: 498,
                body: r#"{"error":{"message":"Capacity exceeded for the flex service tier. Please retry with backoff.","type":"capacity_exceeded","code":"capacity_exceeded"}}"#,
                headers: &[],
            },
        )],
    },
    base: "/openai/v1",
    images: false,
    transcriptions: true,
    extras: |out| {
        out["usage"]["queue_time"] = json!(0.012);
        out["usage"]["prompt_time"] = json!(0.004);
        out["usage"]["completion_time"] = json!(0.021);
        out["usage"]["total_time"] = json!(0.025);
        out["x_groq"] =
            json!({"id": format!("req_{}", ulid::Ulid::new().to_string().to_lowercase())});
    },
};

/// DeepInfra under `/v1/openai` (not `/v1`): the error shape of the OpenAI-compatible routes
/// is not declared (UNCONFIRMED: native `{"error": "<string>"}` used here, as the native
/// endpoints answer); `usage.estimated_cost` (USD) is 3P, UNCONFIRMED.
pub static DEEPINFRA: Host = Host {
    spec: Spec {
        provider: Provider::DeepInfra,
        auth: AuthScheme::Authorization(&["Bearer"]),
        errors: &Errors {
            unauthorized: Answer {
                status: 401,
                body: r#"{"error":"Authentication failed"}"#,
                headers: &[],
            },
            rate_limited: Answer {
                status: 429,
                body: r#"{"error":"Too many requests, rate limited"}"#,
                headers: &[("retry-after", "1")],
            },
            server_error: Answer {
                status: 500,
                body: r#"{"error":"Internal server error"}"#,
                headers: &[],
            },
            quota: Answer {
                status: 402,
                body: r#"{"error":"Insufficient balance, please add a payment method"}"#,
                headers: &[],
            },
            invalid: Answer {
                status: 422,
                body: r#"{"detail":[{"loc":["body","messages"],"msg":"sim:invalid","type":"value_error"}]}"#,
                headers: &[],
            },
            content_policy: Answer {
                status: 400,
                body: r#"{"error":"Request rejected by the content filter"}"#,
                headers: &[],
            },
            not_found: Answer {
                status: 404,
                body: r#"{"error":"Model not found"}"#,
                headers: &[],
            },
            poll_error: Answer {
                status: 503,
                body: r#"{"error":"Service unavailable"}"#,
                headers: &[],
            },
        },
        ok_headers: &[],
        request_id_header: Some("x-request-id"),
        extra: &[],
    },
    base: "/v1/openai",
    images: false,
    transcriptions: false,
    extras: |out| {
        let tokens = out["usage"]["total_tokens"].as_f64().unwrap_or(0.0);
        out["usage"]["estimated_cost"] = json!((tokens * 0.000_000_06 * 1e9).round() / 1e9);
    },
};

/// Mistral: errors `{object:"error", message, type, param, code: "<digits>", raw_status_code}`
/// [ISSUE]; 422 is FastAPI `{detail:[…]}` [SPEC]; 429 with `Retry-After` [DOC glossary].
pub static MISTRAL: Host = Host {
    spec: Spec {
        provider: Provider::Mistral,
        auth: AuthScheme::Authorization(&["Bearer"]),
        errors: &Errors {
            unauthorized: Answer {
                status: 401,
                body: r#"{"object":"error","message":"Unauthorized","type":"unauthorized","param":null,"code":"1000","raw_status_code":401}"#,
                headers: &[],
            },
            rate_limited: Answer {
                status: 429,
                body: r#"{"object":"error","message":"Rate limit exceeded","type":"rate_limited","param":null,"code":"1300","raw_status_code":429}"#,
                headers: &[("retry-after", "1")],
            },
            server_error: Answer {
                status: 500,
                body: r#"{"object":"error","message":"Internal server error","type":"internal_server_error","param":null,"code":"3000","raw_status_code":500}"#,
                headers: &[],
            },
            quota: Answer {
                status: 402,
                body: r#"{"object":"error","message":"No payment method or insufficient credit","type":"payment_required","param":null,"code":"1100","raw_status_code":402}"#,
                headers: &[],
            },
            invalid: Answer {
                status: 422,
                body: r#"{"detail":[{"type":"value_error","loc":["body","messages"],"msg":"sim:invalid","input":null}]}"#,
                headers: &[],
            },
            content_policy: Answer {
                status: 400,
                body: r#"{"object":"error","message":"Content moderation triggered","type":"invalid_request_message_moderation","param":null,"code":"3051","raw_status_code":400}"#,
                headers: &[],
            },
            not_found: Answer {
                status: 400,
                body: r#"{"object":"error","message":"Invalid model: sim","type":"invalid_model","param":null,"code":"1500","raw_status_code":400}"#,
                headers: &[],
            },
            poll_error: Answer {
                status: 503,
                body: r#"{"object":"error","message":"Service unavailable","type":"service_unavailable","param":null,"code":"3000","raw_status_code":503}"#,
                headers: &[],
            },
        },
        ok_headers: &[
            ("ratelimitbysize-limit", "500000"),
            ("ratelimitbysize-remaining", "499000"),
            ("ratelimitbysize-reset", "60"),
        ],
        request_id_header: Some("mistral-correlation-id"),
        extra: &[(
            "gateway_rate_limit",
            Answer {
                status: 429,
                body: r#"{"message":"Requests rate limit exceeded"}"#,
                headers: &[],
            },
        )],
    },
    base: "/v1",
    images: false,
    transcriptions: false,
    extras: |out| {
        out["usage"]["num_cached_tokens"] = json!(0);
        out["usage"]["prompt_tokens_details"] = json!({"cached_tokens": 0});
    },
};

/// Routes of one host.
pub fn router(host: &'static Host) -> Router<Arc<SimState>> {
    let mut r = Router::new().route(
        &format!("{}/chat/completions", host.base),
        post(move |s: State<Arc<SimState>>, h: HeaderMap, b: Bytes| chat(host, s, h, b)),
    );
    if host.images {
        r = r.route(
            &format!("{}/images/generations", host.base),
            post(move |s: State<Arc<SimState>>, h: HeaderMap, b: Bytes| images(host, s, h, b)),
        );
    }
    if host.transcriptions {
        r = r.route(
            &format!("{}/audio/transcriptions", host.base),
            post(move |s: State<Arc<SimState>>, h: HeaderMap, b: Bytes| {
                transcriptions(host, s, h, b)
            }),
        );
    }
    r.route("/files/{id}/{name}", axum::routing::get(files::serve))
}

async fn chat(
    host: &'static Host,
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let spec = &host.spec;
    let call = match spec.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let (Some(model), Some(messages)) = (
        text(&call.body, "model"),
        call.body
            .get("messages")
            .and_then(Value::as_array)
            .filter(|m| !m.is_empty()),
    ) else {
        return spec.reject(&state, &spec.errors.invalid, &call.rid);
    };
    if let Some(resp) = spec.directed(&state, &call, true) {
        return resp;
    }
    spec.accept(&state, &call).await;
    let mut out = completion(model, &call.body, messages, &call.directives);
    (host.extras)(&mut out);
    spec.ok(StatusCode::OK, &call.rid, &out)
}

/// A `chat.completion` object for `body` (shared with the Hugging Face router).
pub fn completion(model: &str, body: &Value, messages: &[Value], d: &Directives) -> Value {
    let prompt_chars: usize = messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .map(|c| c.chars().count())
        .sum();
    let tools = body
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty());
    let choice = body.get("tool_choice");
    let wants_tool = d.has("tool_call")
        || choice.and_then(Value::as_str) == Some("required")
        || choice.is_some_and(Value::is_object);
    let tool = tools
        .filter(|_| wants_tool && choice.and_then(Value::as_str) != Some("none"))
        .and_then(|t| {
            let named = choice
                .and_then(|c| c.pointer("/function/name"))
                .and_then(Value::as_str);
            named.or_else(|| t.first()?.pointer("/function/name")?.as_str())
        });
    let (message, finish, completion_tokens) = match tool {
        Some(name) => (
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": format!("call_{}", ulid::Ulid::new()), "type": "function", "index": 0,
                "function": {"name": name, "arguments": "{\"location\":\"Paris\"}"}}]}),
            "tool_calls",
            12u64,
        ),
        None => {
            let content = if d.empty_output {
                String::new()
            } else {
                let last: String = prompt_key(body).chars().take(80).collect();
                format!("This is a simulated reply to: {last}")
            };
            let n = content.split_whitespace().count() as u64 + 1;
            (json!({"role": "assistant", "content": content}), "stop", n)
        }
    };
    let prompt_tokens = (prompt_chars / 4 + 4 * messages.len()) as u64;
    json!({
        "id": format!("chatcmpl-{}", ulid::Ulid::new()),
        "object": "chat.completion",
        "created": unix_seconds(SystemTime::now()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens},
    })
}

/// Together images: `response_format` `url` | `base64` in the request, `data[].type` `url` |
/// `b64_json` in the answer [SPEC].
async fn images(
    host: &'static Host,
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let spec = &host.spec;
    let call = match spec.begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let (Some(model), Some(_)) = (text(&call.body, "model"), text(&call.body, "prompt")) else {
        return spec.reject(&state, &spec.errors.invalid, &call.rid);
    };
    if let Some(resp) = spec.directed(&state, &call, true) {
        return resp;
    }
    spec.accept(&state, &call).await;
    let dim = |k: &str| {
        call.body
            .get(k)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(1024)
    };
    let (w, h) = (dim("width"), dim("height"));
    let kind = text(&call.body, "output_format")
        .and_then(ImageKind::parse)
        .unwrap_or(ImageKind::Jpeg);
    let n = if call.directives.empty_output {
        0
    } else {
        call.body
            .get("n")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .clamp(1, 4)
    };
    let Ok(bytes) = photo(w, h, kind) else {
        return spec.reject(&state, &spec.errors.server_error, &call.rid);
    };
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let b64 = text(&call.body, "response_format") == Some("base64");
    let data: Vec<Value> = (0..n)
        .map(|i| {
            if b64 {
                json!({"index": i, "type": "b64_json", "b64_json": base64::engine::general_purpose::STANDARD.encode(&bytes)})
            } else {
                let f = state.files.put_shared(&state.base_url(spec.provider), &id, &format!("image-{i}.{}", kind.extension()), kind.content_type(), bytes.clone(), crate::media::photo_size(w, h));
                json!({"index": i, "type": "url", "url": f.url})
            }
        })
        .collect();
    spec.ok(
        StatusCode::OK,
        &call.rid,
        &json!({"id": id, "model": model, "object": "list", "data": data}),
    )
}

/// Seconds of audio in `bytes` of an uploaded file (assumes 128 kbit/s).
pub fn audio_seconds(bytes: usize) -> f64 {
    ((bytes as f64) / 16_000.0).max(1.0).round()
}

/// `POST …/audio/transcriptions` (multipart `file` + `model`): `{text}` (+ `x_groq`), or
/// `verbose_json` with `duration` and `segments`.
async fn transcriptions(
    host: &'static Host,
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let spec = &host.spec;
    if let Err(resp) = spec.authorize(&headers) {
        return resp;
    }
    let rid = spec.request_id();
    let Some((fields, file_bytes)) = form_body(&headers, &raw) else {
        return spec.reject(&state, &spec.errors.invalid, &rid);
    };
    let call = match spec.admit(&state, fields, rid).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if text(&call.body, "model").is_none() || file_bytes == 0 {
        return spec.reject(&state, &spec.errors.invalid, &call.rid);
    }
    if let Some(resp) = spec.directed(&state, &call, true) {
        return resp;
    }
    spec.accept(&state, &call).await;
    let seconds = audio_seconds(file_bytes);
    let said = if call.directives.empty_output {
        ""
    } else {
        "This is a simulated transcript."
    };
    let mut out = if text(&call.body, "response_format") == Some("verbose_json") {
        json!({"task": "transcribe", "language": "english", "duration": seconds, "text": said,
            "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": seconds, "text": said, "tokens": [], "temperature": 0.0,
                "avg_logprob": -0.2, "compression_ratio": 1.2, "no_speech_prob": 0.01}]})
    } else {
        json!({"text": said})
    };
    out["x_groq"] = json!({"id": format!("req_{}", ulid::Ulid::new().to_string().to_lowercase())});
    spec.ok(StatusCode::OK, &call.rid, &out)
}
