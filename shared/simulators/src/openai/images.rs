//! `POST /v1/images/generations`: GPT image models return `b64_json` and token `usage`;
//! dall-e models return `url`s served by the simulator (or `b64_json` on request), dall-e-3
//! with a `revised_prompt`. Validates `prompt`, `n`, `size` and `response_format`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{P, SERVER_ERROR, accept, begin, directed_failure, error, invalid, ok};
use crate::clock::{lower_id, unix_seconds};
use crate::files::MediaKind;
use crate::state::SimState;
use crate::stats::Counter;

fn parse_size(size: &str) -> Option<(u32, u32)> {
    if size == "auto" {
        return Some((1024, 1024));
    }
    let (w, h) = size.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

pub(super) async fn images(
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
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("dall-e-2");
    let gpt = model.starts_with("gpt-image");
    let Some(prompt) = body.get("prompt").and_then(Value::as_str) else {
        return reject(invalid(
            rid,
            "Missing required parameter: 'prompt'.",
            Some("prompt"),
            Some("missing_required_parameter"),
        ));
    };
    let n = body.get("n").map_or(Some(1), Value::as_u64).unwrap_or(0);
    if !(1..=10).contains(&n) {
        return reject(invalid(
            rid,
            "Invalid value for 'n': must be an integer between 1 and 10.",
            Some("n"),
            Some("invalid_value"),
        ));
    }
    if model == "dall-e-3" && n != 1 {
        return reject(invalid(
            rid,
            "You must provide n=1 for this model.",
            None,
            None,
        ));
    }
    let size_text = body
        .get("size")
        .and_then(Value::as_str)
        .unwrap_or("1024x1024");
    let Some(size) = parse_size(size_text) else {
        let msg = format!(
            "Invalid value: '{size_text}'. Supported values are: '1024x1024', '1024x1536', '1536x1024', and 'auto'."
        );
        return reject(invalid(rid, &msg, Some("size"), Some("invalid_value")));
    };
    let format = if gpt {
        "b64_json"
    } else {
        body.get("response_format")
            .and_then(Value::as_str)
            .unwrap_or("url")
    };
    if !matches!(format, "url" | "b64_json") {
        let msg = format!("Invalid value: '{format}'. Supported values are: 'url' and 'b64_json'.");
        return reject(invalid(
            rid,
            &msg,
            Some("response_format"),
            Some("invalid_value"),
        ));
    }
    let safety = if gpt {
        let msg = format!(
            "Your request was rejected by the safety system. If you believe this is an error, contact us at help.openai.com and include the request ID {rid}."
        );
        error(
            rid,
            StatusCode::BAD_REQUEST,
            &msg,
            "image_generation_user_error",
            None,
            Some("moderation_blocked"),
        )
    } else {
        invalid(
            rid,
            "Your request was rejected as a result of our safety system. Your prompt may contain text that is not allowed by our safety system.",
            None,
            Some("content_policy_violation"),
        )
    };
    if let Some(resp) = directed_failure(&state, &call, safety) {
        return resp;
    }
    accept(&state, &call).await;
    let count = if call.directives.empty_output {
        0
    } else {
        usize::try_from(n).unwrap_or(1)
    };
    let id = lower_id();
    let generated = state.files.generate(
        &state.base_url(P),
        &id,
        "img",
        MediaKind::Image,
        count,
        size,
    );
    let files = match generated {
        Ok(f) => f,
        Err(_) => {
            return error(
                rid,
                StatusCode::INTERNAL_SERVER_ERROR,
                SERVER_ERROR,
                "server_error",
                None,
                None,
            );
        }
    };
    let data: Vec<Value> = files
        .iter()
        .map(|f| {
            let mut item = if format == "url" {
                json!({"url": f.url})
            } else {
                // Inline images at the size OpenAI returns them (megabytes for 1024x1024).
                let bytes = crate::files::photo_png(size.0, size.1)
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                json!({"b64_json": STANDARD.encode(bytes)})
            };
            if model == "dall-e-3" {
                item["revised_prompt"] = json!(format!("A detailed rendering of: {prompt}"));
            }
            item
        })
        .collect();
    let mut out = json!({"created": unix_seconds(SystemTime::now()), "data": data});
    if gpt {
        let quality = body
            .get("quality")
            .and_then(Value::as_str)
            .filter(|q| matches!(*q, "low" | "medium" | "high"))
            .unwrap_or("medium");
        let per_image = match quality {
            "low" => 272,
            "high" => 4160,
            _ => 1056,
        };
        let text_tokens = (prompt.chars().count() / 4).max(1) as u64;
        let output_tokens = per_image * count as u64;
        out["background"] = json!("opaque");
        out["output_format"] = json!("png");
        out["quality"] = json!(quality);
        out["size"] = json!(format!("{}x{}", size.0, size.1));
        out["usage"] = json!({"total_tokens": text_tokens + output_tokens, "input_tokens": text_tokens,
            "output_tokens": output_tokens, "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0}});
    }
    ok(rid, started, &out)
}
