//! ElevenLabs simulator: audio bytes sized by the text, `/with-timestamps`, the success
//! headers, and every error envelope (current, legacy, FastAPI 422), including the quota
//! trap (HTTP 401).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{client, sim};
use serde_json::{Value, json};

const VOICE: &str = "JBFqnCBsd6RMkjVDRZzb";

async fn speak(base: &str, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{base}/v1/text-to-speech/{path}"))
        .header("xi-api-key", "sk_test")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn mp3_bytes_grow_with_the_text_and_carry_the_cost() {
    let sim = sim().await;
    let base = sim.base_url("elevenlabs");
    let short = "Hello there.";
    let long = "Hello there. This sentence is quite a bit longer than the first one was.";
    let resp = speak(
        &base,
        VOICE,
        json!({"text": short, "model_id": "eleven_multilingual_v2",
            "voice_settings": {"stability": 0.5, "similarity_boost": 0.75}, "seed": 3}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type").as_deref(), Some("audio/mpeg"));
    assert_eq!(header(&resp, "character-cost").as_deref(), Some("12"));
    assert!(!header(&resp, "request-id").unwrap().is_empty());
    assert_eq!(
        header(&resp, "current-concurrent-requests").as_deref(),
        Some("1")
    );
    assert_eq!(
        header(&resp, "maximum-concurrent-requests").as_deref(),
        Some("2")
    );
    let short_bytes = resp.bytes().await.unwrap();
    assert_eq!(&short_bytes[..4], &[0xFF, 0xFB, 0x90, 0x64]);
    let resp = speak(&base, &format!("{VOICE}/stream"), json!({ "text": long })).await;
    assert_eq!(
        header(&resp, "character-cost").unwrap(),
        long.chars().count().to_string()
    );
    let long_bytes = resp.bytes().await.unwrap();
    assert!(long_bytes.len() > short_bytes.len() * 4);

    let pcm = client()
        .post(format!(
            "{base}/v1/text-to-speech/{VOICE}?output_format=pcm_16000"
        ))
        .header("xi-api-key", "sk_test")
        .json(&json!({"text": "fifteen chars!!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&pcm, "content-type").as_deref(), Some("audio/pcm"));
    // One second of 16-bit samples at 16 kHz.
    assert_eq!(pcm.bytes().await.unwrap().len(), 32_000);

    let stats = sim.stats().provider("elevenlabs");
    assert_eq!(
        (stats.creates, stats.create_rejections, stats.inflight),
        (3, 0, 0)
    );
    assert_eq!(sim.stats().creates_for_prompt("elevenlabs", short), 1);
}

#[tokio::test]
async fn with_timestamps_aligns_every_character() {
    let sim = sim().await;
    let text = "Good morning";
    let resp = speak(
        &sim.base_url("elevenlabs"),
        &format!("{VOICE}/with-timestamps"),
        json!({ "text": text }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "character-cost").as_deref(), Some("12"));
    let body: Value = resp.json().await.unwrap();
    let audio = STANDARD
        .decode(body["audio_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(&audio[..2], &[0xFF, 0xFB]);
    for key in ["alignment", "normalized_alignment"] {
        let a = &body[key];
        let chars = a["characters"].as_array().unwrap();
        assert_eq!(chars.len(), text.chars().count());
        assert_eq!(chars[0], "G");
        let starts = a["character_start_times_seconds"].as_array().unwrap();
        let ends = a["character_end_times_seconds"].as_array().unwrap();
        assert_eq!((starts.len(), ends.len()), (chars.len(), chars.len()));
        assert_eq!(starts[0], 0.0);
        let ends: Vec<f64> = ends.iter().map(|v| v.as_f64().unwrap()).collect();
        assert!(ends.windows(2).all(|w| w[0] <= w[1]));
        // 12 characters at 15 per second.
        assert!((ends[ends.len() - 1] - 0.8).abs() < 1e-9);
    }
}

#[tokio::test]
async fn quota_exhaustion_is_a_401() {
    let sim = sim().await;
    let resp = speak(
        &sim.base_url("elevenlabs"),
        VOICE,
        json!({"text": "out of credits sim:insufficient_quota"}),
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(header(&resp, "x-trace-id").is_some());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["detail"]["status"], "quota_exceeded");
    assert!(
        body["detail"]["message"]
            .as_str()
            .unwrap()
            .starts_with("This request exceeds your quota of 10000.")
    );
    assert!(body["detail"].get("code").is_none(), "legacy shape");
}

#[tokio::test]
async fn error_envelopes() {
    let sim = sim().await;
    let base = sim.base_url("elevenlabs");
    let detail = |v: &Value, k: &str| v["detail"][k].as_str().map(str::to_owned);

    let unauth = client()
        .post(format!("{base}/v1/text-to-speech/{VOICE}"))
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    let trace = header(&unauth, "x-trace-id").unwrap();
    assert!(header(&unauth, "request-id").is_none());
    let body: Value = unauth.json().await.unwrap();
    assert_eq!(detail(&body, "code").as_deref(), Some("invalid_api_key"));
    assert_eq!(
        detail(&body, "type").as_deref(),
        Some("authentication_error")
    );
    assert_eq!(detail(&body, "request_id"), Some(trace));
    let bad_key = client()
        .post(format!("{base}/v1/text-to-speech/{VOICE}"))
        .header("xi-api-key", "invalid-key")
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 401);

    let missing = speak(&base, VOICE, json!({"model_id": "eleven_multilingual_v2"})).await;
    assert_eq!(missing.status(), 422);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(
        body["detail"][0],
        json!({"loc": ["body", "text"], "msg": "Field required", "type": "missing"})
    );
    let bad_format = client()
        .post(format!(
            "{base}/v1/text-to-speech/{VOICE}?output_format=wav_44100"
        ))
        .header("xi-api-key", "sk_test")
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_format.status(), 422);
    let body: Value = bad_format.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["query", "output_format"]));

    let no_voice = speak(&base, "missingVoice1", json!({"text": "hi"})).await;
    assert_eq!(no_voice.status(), 400);
    let body: Value = no_voice.json().await.unwrap();
    assert_eq!(detail(&body, "code").as_deref(), Some("voice_not_found"));
    assert_eq!(detail(&body, "status").as_deref(), Some("voice_not_found"));

    let too_long = speak(&base, VOICE, json!({ "text": "a".repeat(10_001) })).await;
    assert_eq!(too_long.status(), 400);
    let body: Value = too_long.json().await.unwrap();
    assert_eq!(
        detail(&body, "code").as_deref(),
        Some("max_character_limit_exceeded")
    );

    let invalid = speak(&base, VOICE, json!({"text": "x sim:invalid"})).await;
    assert_eq!(invalid.status(), 400);
    let body: Value = invalid.json().await.unwrap();
    assert_eq!(
        (
            detail(&body, "type").as_deref(),
            detail(&body, "code").as_deref(),
            detail(&body, "param").as_deref()
        ),
        (
            Some("validation_error"),
            Some("invalid_parameters"),
            Some("text")
        )
    );

    let blocked = speak(&base, VOICE, json!({"text": "x sim:content_policy"})).await;
    assert_eq!(blocked.status(), 403);
    let body: Value = blocked.json().await.unwrap();
    assert_eq!(
        detail(&body, "status").as_deref(),
        Some("content_against_policy")
    );

    let busy = json!({"text": "busy sim:rate_limit=1"});
    let limited = speak(&base, VOICE, busy.clone()).await;
    assert_eq!(limited.status(), 429);
    let body: Value = limited.json().await.unwrap();
    assert_eq!(
        (
            detail(&body, "type").as_deref(),
            detail(&body, "code").as_deref(),
            detail(&body, "status").as_deref()
        ),
        (
            Some("rate_limit_error"),
            Some("concurrent_limit_exceeded"),
            Some("too_many_concurrent_requests")
        )
    );
    assert!(
        detail(&body, "message")
            .unwrap()
            .starts_with("Too many concurrent requests.")
    );
    assert_eq!(speak(&base, VOICE, busy).await.status(), 200);

    let flaky = json!({"text": "flaky sim:server_error=1"});
    let failed = speak(&base, VOICE, flaky.clone()).await;
    assert_eq!(failed.status(), 500);
    let body: Value = failed.json().await.unwrap();
    assert_eq!(detail(&body, "type").as_deref(), Some("service_error"));
    assert_eq!(
        detail(&body, "code").as_deref(),
        Some("internal_server_error")
    );
    assert_eq!(speak(&base, VOICE, flaky).await.status(), 200);
    assert_eq!(
        speak(&base, VOICE, json!({"text": "x sim:fail"}))
            .await
            .status(),
        500
    );

    let stats = sim.stats().provider("elevenlabs");
    assert_eq!((stats.creates, stats.create_rejections), (2, 11));
}

#[tokio::test]
async fn empty_output_and_hang() {
    let sim = sim().await;
    let base = sim.base_url("elevenlabs");
    let empty = speak(&base, VOICE, json!({"text": "quiet sim:empty_output"})).await;
    assert_eq!(empty.status(), 200);
    assert_eq!(
        header(&empty, "content-type").as_deref(),
        Some("audio/mpeg")
    );
    assert_eq!(header(&empty, "character-cost").as_deref(), Some("22"));
    assert!(empty.bytes().await.unwrap().is_empty());
    let empty = speak(
        &base,
        &format!("{VOICE}/with-timestamps"),
        json!({"text": "quiet sim:empty_output"}),
    )
    .await;
    let body: Value = empty.json().await.unwrap();
    assert_eq!(body["audio_base64"], "");
    assert!(body["alignment"].is_null());

    let slow = client()
        .post(format!("{base}/v1/text-to-speech/{VOICE}"))
        .header("xi-api-key", "sk_test")
        .timeout(Duration::from_millis(100))
        .json(&json!({"text": "zzz sim:hang=1000"}))
        .send()
        .await;
    assert!(slow.unwrap_err().is_timeout());
}
