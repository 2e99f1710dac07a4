//! `POST /v1/chat/completions`: a `chat.completion` object with `n` choices and token usage.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{P, accept, begin, directed_failure, invalid, ok};
use crate::clock::unix_seconds;
use crate::directives::prompt_key;
use crate::state::SimState;
use crate::stats::Counter;

pub(super) async fn chat(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let started = SystemTime::now();
    let call = match begin(&state, &headers, &raw).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let (rid, body) = (&call.rid, &call.body);
    let reject = |resp: Response| {
        state.stats.bump(P, Counter::CreateRejection);
        resp
    };
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return reject(invalid(
            rid,
            "you must provide a model parameter",
            None,
            None,
        ));
    };
    let messages = match body.get("messages").and_then(Value::as_array) {
        Some(m) if !m.is_empty() => m,
        Some(_) => {
            return reject(invalid(
                rid,
                "[] is too short - 'messages'",
                Some("messages"),
                None,
            ));
        }
        None => {
            return reject(invalid(
                rid,
                "Missing required parameter: 'messages'.",
                Some("messages"),
                Some("missing_required_parameter"),
            ));
        }
    };
    let safety = invalid(
        rid,
        "Invalid prompt: your prompt was flagged as potentially violating our usage policy. Please try again with a different prompt.",
        None,
        Some("content_policy_violation"),
    );
    if let Some(resp) = directed_failure(&state, &call, safety) {
        return resp;
    }
    accept(&state, &call).await;
    let prompt_chars: usize = messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .map(|c| c.chars().count())
        .sum();
    let content = if call.directives.empty_output {
        String::new()
    } else {
        let last: String = prompt_key(body).chars().take(80).collect();
        format!("This is a simulated reply to: {last}")
    };
    let n = body
        .get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 8);
    let choices: Vec<Value> = (0..n)
        .map(|i| {
            json!({"index": i, "message": {"role": "assistant", "content": content, "refusal": null,
            "annotations": []}, "logprobs": null, "finish_reason": "stop"})
        })
        .collect();
    let prompt_tokens = (prompt_chars / 4 + 4 * messages.len()) as u64;
    let completion_tokens = (content.split_whitespace().count() as u64 + 1) * n;
    let out = json!({
        "id": format!("chatcmpl-{}", ulid::Ulid::new()),
        "object": "chat.completion",
        "created": unix_seconds(SystemTime::now()),
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        "service_tier": "default",
        "system_fingerprint": "fp_sim",
    });
    ok(rid, started, &out)
}
