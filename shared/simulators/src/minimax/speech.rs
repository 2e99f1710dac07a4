//! MiniMax speech, T2A v2 (`POST /v1/t2a_v2`, immediate), from
//! `docs/providers/minimax-speech.md`: `{model, text, stream?, voice_setting{voice_id, …},
//! audio_setting{sample_rate, bitrate, format, channel}, output_format?}` answers HTTP 200
//! `{data: {audio: <HEX-encoded audio>, status: 2}, extra_info: {audio_length (ms),
//! audio_sample_rate, audio_size, bitrate, word_count, usage_characters, audio_format,
//! audio_channel}, trace_id, base_resp}` — `audio` is **hex**, not base64 (with
//! `output_format: "url"` the same field holds a URL served here); the billed count is
//! `usage_characters`. Errors are HTTP 200 with `base_resp.status_code != 0`, as for video
//! (1004 auth, 1002 rate limit, 1008 balance, 1024 internal, 1026 sensitive input, 2013
//! invalid params); `stream: true` is not simulated (2013).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{P, authorize, failure, success};
use crate::directives::{Directives, prompt_key};
use crate::elevenlabs::audio::{Format, duration_seconds};
use crate::faults::{Rejection, admit};
use crate::reply::{add_headers, json, parse_body};
use crate::state::SimState;
use crate::stats::Counter;

const MODELS: [&str; 6] = [
    "speech-2.8-hd",
    "speech-2.8-turbo",
    "speech-2.6-hd",
    "speech-2.6-turbo",
    "speech-02-hd",
    "speech-02-turbo",
];

pub(super) async fn t2a(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let trace = format!("{:032x}", rand::random::<u128>());
    let reject = |mut resp: Response| {
        state.stats.bump(P, Counter::CreateRejection);
        add_headers(&mut resp, &[("trace-id", trace.clone())]);
        resp
    };
    if let Err(resp) = authorize(&headers) {
        return reject(resp);
    }
    let Ok(body) = parse_body(&raw) else {
        return reject(failure(
            2013,
            "invalid params, request body must be a JSON object",
        ));
    };
    let d = Directives::scan_as(&body, crate::provider::Provider::MiniMax);
    if let Err(r) = admit(&state, P, &d).await {
        return match r {
            Rejection::RateLimited | Rejection::Capacity => failure(1002, "rate limit exceeded"),
            Rejection::ServerError => failure(1024, "internal error"),
        };
    }
    if d.insufficient_quota {
        return reject(failure(1008, "insufficient balance"));
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !MODELS.contains(&model) {
        return reject(failure(2013, "invalid params, model is invalid"));
    }
    let Some(text) = body
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return reject(failure(2013, "invalid params, text is required"));
    };
    if body.get("stream").and_then(Value::as_bool) == Some(true) || d.invalid {
        return reject(failure(
            2013,
            "invalid params, stream is not supported here",
        ));
    }
    if d.content_policy {
        return reject(failure(1026, "input new_sensitive"));
    }
    if d.fail {
        return reject(failure(1024, "internal error"));
    }
    state.stats.record_create(P, &prompt_key(&body), 0);
    if let Some(ms) = d.duration_ms {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let rate = body
        .pointer("/audio_setting/sample_rate")
        .and_then(Value::as_u64)
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(32_000);
    let kbps = body
        .pointer("/audio_setting/bitrate")
        .and_then(Value::as_u64)
        .map_or(128, |b| u32::try_from(b / 1000).unwrap_or(128));
    let format = body
        .pointer("/audio_setting/format")
        .and_then(Value::as_str)
        .unwrap_or("mp3");
    let seconds = if d.empty_output {
        0.0
    } else {
        duration_seconds(text)
    };
    let bytes = match format {
        "pcm" | "wav" => Format::Pcm { rate: 32_000 }.render(seconds),
        "flac" => {
            let mut v = b"fLaC".to_vec();
            v.resize(((seconds * 40_000.0) as usize).max(4), 0);
            v
        }
        _ => Format::Mp3 {
            rate: 32_000,
            kbps: 128,
        }
        .render(seconds),
    };
    let size = bytes.len();
    let audio = if body.get("output_format").and_then(Value::as_str) == Some("url") {
        let id = trace.clone();
        let f = state.files.put(
            &state.base_url(P),
            &id,
            &format!("speech.{format}"),
            "audio/mpeg",
            bytes,
            (0, 0),
        );
        f.url
    } else {
        hex::encode(&bytes)
    };
    let chars = text.chars().count();
    let mut resp = json(
        StatusCode::OK,
        &[("trace-id", trace.clone())],
        &json!({
            "data": {"audio": audio, "status": 2},
            "extra_info": {"audio_length": (seconds * 1000.0).round() as u64, "audio_sample_rate": rate, "audio_size": size,
                "bitrate": kbps * 1000, "word_count": text.split_whitespace().count(), "invisible_character_ratio": 0,
                "usage_characters": chars, "audio_format": format, "audio_channel": 1},
            "trace_id": trace,
            "base_resp": success(),
        }),
    );
    add_headers(&mut resp, &[]);
    resp
}
