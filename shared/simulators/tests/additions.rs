//! What issue 19 added to the existing simulators: OpenAI speech, transcription, video and
//! the tokens-per-minute 429; MiniMax T2A v2; and the documented behaviour they missed
//! (Replicate `aborted`, default webhook events and 429; fal `request_timeout`; Stability
//! 413/422/403 and `output_format`; Runway failure codes; real-size images).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{client, next_hook, poll_until, receiver, sim};
use executor_simulators::{SimConfig, Simulators};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const OPENAI: &str = "Bearer sk-test";

#[tokio::test]
async fn openai_speech_transcription_and_the_two_rate_limits() {
    let sim = sim().await;
    let base = sim.base_url("openai");
    let speech = client().post(format!("{base}/v1/audio/speech")).header("authorization", OPENAI)
        .json(&json!({"model": "gpt-4o-mini-tts", "input": "Hello from the simulator, this is speech.", "voice": "coral"})).send().await.unwrap();
    assert_eq!(speech.status(), 200);
    assert_eq!(speech.headers()["content-type"], "audio/mpeg");
    assert!(speech.headers().contains_key("x-request-id"));
    assert!(speech.bytes().await.unwrap().len() > 10_000);
    let bad = client()
        .post(format!("{base}/v1/audio/speech"))
        .header("authorization", OPENAI)
        .json(&json!({"model": "tts-1", "input": "x", "voice": "nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let form = |model: &str| {
        Form::new()
            .text("model", model.to_owned())
            .part("file", Part::bytes(vec![0u8; 160_000]).file_name("a.mp3"))
    };
    let w: Value = client()
        .post(format!("{base}/v1/audio/transcriptions"))
        .header("authorization", OPENAI)
        .multipart(form("whisper-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(w["usage"], json!({"type": "duration", "seconds": 10.0}));
    let t: Value = client()
        .post(format!("{base}/v1/audio/transcriptions"))
        .header("authorization", OPENAI)
        .multipart(form("gpt-4o-transcribe"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["usage"]["type"], "tokens");
    assert!(
        t["usage"]["input_token_details"]["audio_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let json_body = client()
        .post(format!("{base}/v1/audio/transcriptions"))
        .header("authorization", OPENAI)
        .json(&json!({"model": "whisper-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400, "transcriptions are multipart");

    let chat =
        |prompt: &str| {
            client().post(format!("{base}/v1/chat/completions")).header("authorization", OPENAI)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}))
        };
    let rpm = chat("a sim:rate_limit").send().await.unwrap();
    assert_eq!(rpm.status(), 429);
    assert!(
        rpm.headers().contains_key("retry-after"),
        "RPM: retry headers"
    );
    let rpm: Value = rpm.json().await.unwrap();
    assert_eq!(rpm["error"]["type"], "requests");
    let tpm = chat("b sim:rate_limit_tokens=1").send().await.unwrap();
    assert_eq!(tpm.status(), 429);
    assert!(
        !tpm.headers().contains_key("retry-after"),
        "TPM: the wait only in the message"
    );
    assert_eq!(tpm.headers()["x-ratelimit-remaining-tokens"], "0");
    let tpm: Value = tpm.json().await.unwrap();
    assert_eq!(
        (tpm["error"]["type"].as_str(), tpm["error"]["code"].as_str()),
        (Some("tokens"), Some("rate_limit_exceeded"))
    );
    assert!(
        tpm["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens per min (TPM)")
            && tpm["error"]["message"]
                .as_str()
                .unwrap()
                .contains("try again in")
    );
    assert_eq!(
        chat("b sim:rate_limit_tokens=1")
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "counted: once"
    );
}

#[tokio::test]
async fn openai_videos_poll_and_download() {
    let sim = sim().await;
    let base = sim.base_url("openai");
    let (status, v): (u16, Value) = {
        let r = client()
            .post(format!("{base}/v1/videos"))
            .header("authorization", OPENAI)
            .json(
                &json!({"model": "sora-2", "prompt": "waves", "seconds": "4", "size": "1280x720"}),
            )
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    };
    assert_eq!(
        (status, v["status"].as_str(), v["object"].as_str()),
        (200, Some("queued"), Some("video"))
    );
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("video_"));
    let first = client()
        .get(format!("{base}/v1/videos/{id}"))
        .header("authorization", OPENAI)
        .send()
        .await
        .unwrap();
    assert!(first.headers().contains_key("openai-poll-after-ms"));
    let early = client()
        .get(format!("{base}/v1/videos/{id}/content"))
        .header("authorization", OPENAI)
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 404);
    let seen = poll_until(
        || {
            client()
                .get(format!("{base}/v1/videos/{id}"))
                .header("authorization", OPENAI)
        },
        |b| b["status"] == "completed" || b["status"] == "failed",
    )
    .await;
    assert_eq!(seen.last().unwrap()["status"], "completed");
    let mp4 = client()
        .get(format!("{base}/v1/videos/{id}/content"))
        .header("authorization", OPENAI)
        .send()
        .await
        .unwrap();
    assert_eq!(mp4.headers()["content-type"], "video/mp4");
    assert!(mp4.bytes().await.unwrap().len() > 2_000_000);
    let bad = client()
        .post(format!("{base}/v1/videos"))
        .header("authorization", OPENAI)
        .json(&json!({"prompt": "x", "seconds": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "seconds is a string");
    let deleted: Value = client()
        .delete(format!("{base}/v1/videos/{id}"))
        .header("authorization", OPENAI)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["object"], "video.deleted");
}

#[tokio::test]
async fn minimax_t2a_answers_hex_audio_and_errors_in_http_200() {
    let sim = sim().await;
    let url = format!("{}/v1/t2a_v2", sim.base_url("minimax"));
    let req = json!({"model": "speech-2.8-hd", "text": "Hello, this is MiniMax speech.", "voice_setting": {"voice_id": "male-qn-qingse"}, "audio_setting": {"format": "mp3"}});
    let r: Value = client()
        .post(&url)
        .bearer_auth("k")
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["base_resp"]["status_code"], 0);
    let audio = hex::decode(r["data"]["audio"].as_str().unwrap()).expect("hex, not base64");
    assert_eq!(audio[0], 0xFF);
    assert_eq!(r["extra_info"]["usage_characters"], 30);
    assert_eq!(
        r["extra_info"]["audio_size"].as_u64().unwrap() as usize,
        audio.len()
    );
    let unauth = client().post(&url).json(&req).send().await.unwrap();
    assert_eq!(unauth.status(), 200);
    let unauth: Value = unauth.json().await.unwrap();
    assert_eq!(unauth["base_resp"]["status_code"], 1004);
    let sensitive: Value = client()
        .post(&url)
        .bearer_auth("k")
        .json(&json!({"model": "speech-2.8-turbo", "text": "x sim:content_policy"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sensitive["base_resp"]["status_code"], 1026);
}

#[tokio::test]
async fn replicate_aborted_default_events_and_documented_429() {
    let sim = Simulators::start(SimConfig {
        job_duration_ms: 100,
        replicate_throttle_seconds: 30,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let base = sim.base_url("replicate");
    let create = |input: Value| {
        client()
            .post(format!(
                "{base}/v1/models/black-forest-labs/flux-schnell/predictions"
            ))
            .header("authorization", "Bearer r8_x")
            .json(&json!({"input": input}))
    };
    let limited = create(json!({"prompt": "sim:rate_limit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "30");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(
        body,
        json!({"detail": "Request was throttled. Your rate limit resets in ~30s."})
    );
    let p: Value = create(json!({"prompt": "late sim:aborted"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = p["id"].as_str().unwrap().to_owned();
    let seen = poll_until(
        || {
            client()
                .get(format!("{base}/v1/predictions/{id}"))
                .header("authorization", "Bearer r8_x")
        },
        |b| b["status"] != "starting",
    )
    .await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "aborted");
    assert!(last["started_at"].is_null() && last["output"].is_null());
    // Real-size images: a 1024x1024 output is megabytes, not 16 pixels.
    let ok: Value = create(json!({"prompt": "big"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let oid = ok["id"].as_str().unwrap().to_owned();
    let seen = poll_until(
        || {
            client()
                .get(format!("{base}/v1/predictions/{oid}"))
                .header("authorization", "Bearer r8_x")
        },
        |b| b["status"] == "succeeded",
    )
    .await;
    let png = reqwest::get(seen.last().unwrap()["output"][0].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(png.len() > 1_000_000, "{} bytes", png.len());
    let (hook, mut rx) = receiver(0).await;
    let filtered: Value = client().post(format!("{base}/v1/models/o/m/predictions")).header("authorization", "Bearer r8_x")
        .json(&json!({"input": {"prompt": "x"}, "webhook": hook, "webhook_events_filter": ["completed"]})).send().await.unwrap().json().await.unwrap();
    assert!(filtered["id"].is_string());
    assert_eq!(
        next_hook(&mut rx).await.json()["status"],
        "succeeded",
        "with a filter: only what it asks"
    );
}

#[tokio::test]
async fn fal_completed_with_request_timeout() {
    let sim = sim().await;
    let base = sim.base_url("fal");
    let r: Value = client()
        .post(format!("{base}/fal-ai/flux/dev"))
        .header("authorization", "Key k")
        .json(&json!({"prompt": "x sim:request_timeout"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status_url = r["status_url"].as_str().unwrap().to_owned();
    let seen = poll_until(
        || client().get(&status_url).header("authorization", "Key k"),
        |b| b["status"] == "COMPLETED",
    )
    .await;
    let done = seen.last().unwrap();
    assert_eq!(done["error_type"], "request_timeout");
    assert!(
        done["metrics"]["inference_time"].is_number(),
        "metrics always on COMPLETED"
    );
    let result = client()
        .get(r["response_url"].as_str().unwrap())
        .header("authorization", "Key k")
        .send()
        .await
        .unwrap();
    assert_eq!(result.status(), 504);
}

#[tokio::test]
async fn stability_documented_errors_and_formats() {
    let sim = sim().await;
    let url = format!(
        "{}/v2beta/stable-image/generate/sd3",
        sim.base_url("stability")
    );
    let send = |prompt: &str, format: &str| {
        client()
            .post(&url)
            .header("authorization", "Bearer k")
            .header("accept", "image/*")
            .multipart(
                Form::new()
                    .text("prompt", prompt.to_owned())
                    .text("output_format", format.to_owned()),
            )
    };
    for (directive, status, name) in [
        ("sim:too_large", 413, "payload_too_large"),
        ("sim:unprocessable", 422, "public_figure"),
        ("sim:moderated", 403, "content_moderation"),
    ] {
        let r = send(&format!("x {directive}"), "png").send().await.unwrap();
        assert_eq!(r.status(), status);
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["name"], name);
        assert!(b["errors"].is_array() && b["id"].is_string());
    }
    let jpeg = send("a cat", "jpeg").send().await.unwrap();
    assert_eq!(jpeg.headers()["content-type"], "image/jpeg");
    let bytes = jpeg.bytes().await.unwrap();
    assert_eq!(&bytes[..2], [0xFF, 0xD8]);
    assert!(bytes.len() > 100_000);
}

#[tokio::test]
async fn runway_failure_codes() {
    let sim = sim().await;
    let base = sim.base_url("runway");
    for (prompt, code) in [
        (
            "x sim:failure_code=SAFETY.OUTPUT.VIDEO",
            "SAFETY.OUTPUT.VIDEO",
        ),
        (
            "x sim:fail sim:failure_code=INPUT_PREPROCESSING.INTERNAL",
            "INPUT_PREPROCESSING.INTERNAL",
        ),
        ("x sim:content_policy", "SAFETY.INPUT.TEXT"),
    ] {
        let c: Value = client()
            .post(format!("{base}/v1/text_to_video"))
            .header("authorization", "Bearer k")
            .header("x-runway-version", "2024-11-06")
            .json(&json!({"model": "gen4_turbo", "promptText": prompt}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = c["id"].as_str().unwrap().to_owned();
        let seen = poll_until(
            || {
                client()
                    .get(format!("{base}/v1/tasks/{id}"))
                    .header("authorization", "Bearer k")
                    .header("x-runway-version", "2024-11-06")
            },
            |b| b["status"] == "FAILED" || b["status"] == "SUCCEEDED",
        )
        .await;
        let done = seen.last().unwrap();
        assert_eq!(
            (done["status"].as_str(), done["failureCode"].as_str()),
            (Some("FAILED"), Some(code))
        );
        assert!(done["failure"].is_string());
    }
    let c: Value = client()
        .post(format!("{base}/v1/sound_effect"))
        .header("authorization", "Bearer k")
        .header("x-runway-version", "2024-11-06")
        .json(&json!({"model": "eleven_text_to_sound_v2", "promptText": "rain on a tin roof"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = c["id"].as_str().unwrap().to_owned();
    let seen = poll_until(
        || {
            client()
                .get(format!("{base}/v1/tasks/{id}"))
                .header("authorization", "Bearer k")
                .header("x-runway-version", "2024-11-06")
        },
        |b| b["status"] == "SUCCEEDED",
    )
    .await;
    let mp3 = reqwest::get(seen.last().unwrap()["output"][0].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(mp3.headers()["content-type"], "audio/mpeg");
}

#[tokio::test]
async fn elevenlabs_sound_generation_answers_audio_of_the_asked_length() {
    let sim = sim().await;
    let base = sim.base_url("elevenlabs");
    let post = |body: Value, key: &str| {
        client()
            .post(format!("{base}/v1/sound-generation"))
            .header("xi-api-key", key)
            .json(&body)
            .send()
    };
    let short = post(
        json!({"text": "a door creaks", "duration_seconds": 1.0}),
        "k",
    )
    .await
    .unwrap();
    assert_eq!(short.status(), 200);
    assert_eq!(short.headers()["content-type"], "audio/mpeg");
    let short = short.bytes().await.unwrap().len();
    let long = post(
        json!({"text": "a door creaks", "duration_seconds": 10.0}),
        "k",
    )
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap()
    .len();
    assert!(long > short * 5, "{long} vs {short}");
    let out_of_range = post(json!({"text": "x", "duration_seconds": 31}), "k")
        .await
        .unwrap();
    assert_eq!(out_of_range.status(), 422);
    assert_eq!(
        post(json!({"text": "x"}), "").await.unwrap().status(),
        401,
        "the same auth as text to speech"
    );
}
