//! `POST /v1/audio/speech` (JSON `{model, input, voice, response_format?, instructions?,
//! speed?}` → audio bytes: MP3 frames by default; `opus`, `aac`, `flac`, `wav`, `pcm` as
//! well — their exact `content-type` is UNCONFIRMED; `stream_format: "sse"` is not simulated)
//! and `POST /v1/audio/transcriptions` (multipart `file` + `model` → `{text, usage}` where
//! `usage` is `{type: "tokens", input_tokens, …}` for the gpt-4o models and
//! `{type: "duration", seconds}` for `whisper-1`; `verbose_json` adds `language`,
//! `duration`, `segments`; `text`/`srt`/`vtt` answer plain text).

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{P, accept, admit_body, authorize, begin, directed_failure, invalid, ok};
use crate::clock::request_id;
use crate::elevenlabs::audio::{Format, duration_seconds};
use crate::state::SimState;
use crate::stats::Counter;

const VOICES: [&str; 13] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];
const SPEECH_MODELS: [&str; 4] = [
    "tts-1",
    "tts-1-hd",
    "gpt-4o-mini-tts",
    "gpt-4o-mini-tts-2025-12-15",
];

/// Silent audio of `seconds` in an OpenAI `response_format`: (content type, bytes).
fn audio(format: &str, seconds: f64) -> Option<(&'static str, Vec<u8>)> {
    let pcm = |rate: u32| Format::Pcm { rate }.render(seconds);
    let sized = |magic: &[u8], per_second: f64| {
        let mut v = magic.to_vec();
        v.resize(((per_second * seconds) as usize).max(magic.len()), 0);
        v
    };
    Some(match format {
        "mp3" => (
            "audio/mpeg",
            Format::Mp3 {
                rate: 24_000,
                kbps: 64,
            }
            .render(seconds),
        ),
        "pcm" => ("audio/pcm", pcm(24_000)),
        "wav" => {
            let data = pcm(24_000);
            let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
            let mut v = Vec::with_capacity(data.len() + 44);
            v.extend_from_slice(b"RIFF");
            v.extend_from_slice(&(len.saturating_add(36)).to_le_bytes());
            v.extend_from_slice(b"WAVEfmt ");
            v.extend_from_slice(&16u32.to_le_bytes());
            v.extend_from_slice(&1u16.to_le_bytes());
            v.extend_from_slice(&1u16.to_le_bytes());
            v.extend_from_slice(&24_000u32.to_le_bytes());
            v.extend_from_slice(&48_000u32.to_le_bytes());
            v.extend_from_slice(&2u16.to_le_bytes());
            v.extend_from_slice(&16u16.to_le_bytes());
            v.extend_from_slice(b"data");
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&data);
            ("audio/wav", v)
        }
        "opus" => ("audio/opus", sized(b"OggS", 4_000.0)),
        "aac" => ("audio/aac", sized(&[0xFF, 0xF1], 8_000.0)),
        "flac" => ("audio/flac", sized(b"fLaC", 40_000.0)),
        _ => return None,
    })
}

pub(in crate::openai) async fn speech(
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
    let field = |k: &str| body.get(k).and_then(Value::as_str);
    let Some(model) = field("model") else {
        return reject(invalid(
            rid,
            "Missing required parameter: 'model'.",
            Some("model"),
            Some("missing_required_parameter"),
        ));
    };
    if !SPEECH_MODELS.contains(&model) {
        return reject(invalid(
            rid,
            &format!(
                "Invalid value: '{model}'. Supported values are: 'tts-1', 'tts-1-hd' and 'gpt-4o-mini-tts'."
            ),
            Some("model"),
            Some("invalid_value"),
        ));
    }
    let Some(input) = field("input") else {
        return reject(invalid(
            rid,
            "Missing required parameter: 'input'.",
            Some("input"),
            Some("missing_required_parameter"),
        ));
    };
    if input.chars().count() > 4096 {
        return reject(invalid(
            rid,
            "[{'type': 'string_too_long', 'loc': ('body', 'input'), 'msg': 'String should have at most 4096 characters'}]",
            Some("input"),
            Some("string_above_max_length"),
        ));
    }
    let voice_ok = match body.get("voice") {
        Some(Value::String(v)) => VOICES.contains(&v.as_str()),
        Some(Value::Object(o)) => o.get("id").is_some_and(Value::is_string),
        _ => false,
    };
    if !voice_ok {
        return reject(invalid(
            rid,
            "Invalid value for 'voice'.",
            Some("voice"),
            Some("invalid_value"),
        ));
    }
    let safety = invalid(
        rid,
        "This request has been blocked by our content filters.",
        None,
        Some("content_policy_violation"),
    );
    if let Some(resp) = directed_failure(&state, &call, safety) {
        return resp;
    }
    accept(&state, &call).await;
    let format = field("response_format").unwrap_or("mp3");
    let seconds = if call.directives.empty_output {
        0.0
    } else {
        duration_seconds(input)
    };
    let Some((content_type, bytes)) = audio(format, seconds) else {
        return reject(invalid(
            rid,
            &format!(
                "Invalid value: '{format}'. Supported values are: 'mp3', 'opus', 'aac', 'flac', 'wav', and 'pcm'."
            ),
            Some("response_format"),
            Some("invalid_value"),
        ));
    };
    let mut resp = ok(rid, started, &Value::Null);
    *resp.body_mut() = axum::body::Body::from(bytes);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

pub(in crate::openai) async fn transcriptions(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let started = SystemTime::now();
    let rid = request_id();
    if let Err(resp) = authorize(&state, &headers, &rid) {
        return resp;
    }
    let Some((fields, file_bytes)) = crate::engine::form_body(&headers, &raw) else {
        state.stats.bump(P, Counter::CreateRejection);
        return invalid(
            &rid,
            "Invalid Content-Type header (application/json), expected multipart/form-data. (HINT: If you're using curl, you can pass -H 'Content-Type: multipart/form-data')",
            None,
            None,
        );
    };
    let call = match admit_body(&state, rid, fields).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let (rid, body) = (&call.rid, &call.body);
    let reject = |resp: Response| {
        state.stats.bump(P, Counter::CreateRejection);
        resp
    };
    let Some(model) = body.get("model").and_then(Value::as_str).map(str::to_owned) else {
        return reject(invalid(
            rid,
            "you must provide a model parameter",
            None,
            None,
        ));
    };
    if file_bytes == 0 {
        return reject(invalid(
            rid,
            "Missing required parameter: 'file'.",
            Some("file"),
            Some("missing_required_parameter"),
        ));
    }
    let safety = invalid(
        rid,
        "This request has been blocked by our content filters.",
        None,
        Some("content_policy_violation"),
    );
    if let Some(resp) = directed_failure(&state, &call, safety) {
        return resp;
    }
    accept(&state, &call).await;
    let seconds = crate::compat::audio_seconds(file_bytes);
    let said = if call.directives.empty_output {
        ""
    } else {
        "This is a simulated transcript."
    };
    let usage = if model.starts_with("whisper") {
        json!({"type": "duration", "seconds": seconds})
    } else {
        let audio_tokens = (seconds * 10.0) as u64;
        json!({"type": "tokens", "input_tokens": audio_tokens, "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
            "output_tokens": 8, "total_tokens": audio_tokens + 8})
    };
    let format = body
        .get("response_format")
        .and_then(Value::as_str)
        .unwrap_or("json");
    let out = match format {
        "json" => json!({"text": said, "usage": usage}),
        "verbose_json" => {
            json!({"task": "transcribe", "language": "english", "duration": seconds, "text": said,
            "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": seconds, "text": said, "tokens": [], "temperature": 0.0,
                "avg_logprob": -0.2, "compression_ratio": 1.1, "no_speech_prob": 0.01}],
            "usage": {"type": "duration", "seconds": seconds}})
        }
        "text" | "srt" | "vtt" => {
            let text = match format {
                "srt" => format!(
                    "1\n00:00:00,000 --> 00:00:0{},000\n{said}\n\n",
                    seconds.min(9.0) as u64
                ),
                "vtt" => format!(
                    "WEBVTT\n\n00:00:00.000 --> 00:00:0{}.000\n{said}\n\n",
                    seconds.min(9.0) as u64
                ),
                _ => format!("{said}\n"),
            };
            let mut resp = ok(rid, started, &Value::Null);
            *resp.body_mut() = axum::body::Body::from(text);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return resp;
        }
        other => {
            return reject(invalid(
                rid,
                &format!("Invalid value: '{other}'."),
                Some("response_format"),
                Some("invalid_value"),
            ));
        }
    };
    ok(rid, started, &out)
}
