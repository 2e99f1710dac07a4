//! The simulators written for issue 19 on the data-driven engine: each provider's real
//! paths, auth, status values, error envelopes and directive faults, as documented in
//! `docs/providers/*.md`. Jobs take 100 ms (the `common::sim` config).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{client, next_hook, poll_until, receiver, sim};
use reqwest::multipart::Form;
use serde_json::{Value, json};

async fn body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn anthropic_messages_and_batches() {
    let sim = sim().await;
    let base = sim.base_url("anthropic");
    let post = |path: &str, key: Option<&str>, b: Value| {
        let mut r = client().post(format!("{base}{path}")).json(&b);
        if let Some(k) = key {
            r = r
                .header("x-api-key", k)
                .header("anthropic-version", "2023-06-01");
        }
        r
    };
    let msg = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]});
    let resp = post("/v1/messages", None, msg.clone())
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("request-id"));
    let (status, err) = body(resp).await;
    assert_eq!(
        (status, err["type"].as_str(), err["error"]["type"].as_str()),
        (401, Some("error"), Some("authentication_error"))
    );
    assert!(err["request_id"].as_str().unwrap().starts_with("req_"));
    let no_version = client()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", "k")
        .json(&msg)
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);

    let (status, m) = body(
        post("/v1/messages", Some("k"), msg.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (m["type"].as_str(), m["stop_reason"].as_str()),
        (Some("message"), Some("end_turn"))
    );
    assert_eq!(m["content"][0]["type"], "text");
    assert!(m["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let tools = json!({"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}], "tool_choice": {"type": "any"}});
    let (_, t) = body(post("/v1/messages", Some("k"), tools).send().await.unwrap()).await;
    assert_eq!(t["stop_reason"], "tool_use");
    assert!(
        t["content"][0]["input"].is_object(),
        "tool_use.input is an object"
    );
    let refusal = json!({"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "x sim:content_policy"}]});
    let (status, r) = body(
        post("/v1/messages", Some("k"), refusal)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, r["stop_reason"].as_str()), (200, Some("refusal")));
    let over = json!({"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "x sim:overloaded"}]});
    let (status, o) = body(post("/v1/messages", Some("k"), over).send().await.unwrap()).await;
    assert_eq!(
        (status, o["error"]["type"].as_str()),
        (529, Some("overloaded_error"))
    );
    let limited = post("/v1/messages", Some("k"), json!({"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "sim:rate_limit"}]})).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(body(limited).await.1["error"]["type"], "rate_limit_error");

    let batch = json!({"requests": [
        {"custom_id": "a", "params": {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "one"}]}},
        {"custom_id": "b", "params": {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "two sim:fail"}]}}]});
    let (status, created) = body(
        post("/v1/messages/batches", Some("k"), batch)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, created["processing_status"].as_str()),
        (200, Some("in_progress"))
    );
    assert!(created["id"].as_str().unwrap().starts_with("msgbatch_"));
    assert!(created["results_url"].is_null());
    let id = created["id"].as_str().unwrap().to_owned();
    let seen = poll_until(
        || {
            client()
                .get(format!("{base}/v1/messages/batches/{id}"))
                .header("x-api-key", "k")
                .header("anthropic-version", "2023-06-01")
        },
        |b| b["processing_status"] == "ended",
    )
    .await;
    let ended = seen.last().unwrap();
    assert_eq!(ended["request_counts"]["succeeded"], 1);
    assert_eq!(ended["request_counts"]["errored"], 1);
    let lines = client()
        .get(ended["results_url"].as_str().unwrap())
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(lines.headers()["content-type"], "application/x-jsonl");
    let lines: Vec<Value> = lines
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by = |id: &str| lines.iter().find(|l| l["custom_id"] == id).unwrap()["result"].clone();
    assert_eq!(by("a")["type"], "succeeded");
    assert_eq!(by("a")["message"]["usage"]["service_tier"], "batch");
    assert_eq!(by("b")["type"], "errored");
    assert_eq!(by("b")["error"]["error"]["type"], "api_error");
}

#[tokio::test]
async fn google_gemini_imagen_and_veo() {
    let sim = sim().await;
    let base = sim.base_url("google");
    let call = |path: &str, key: Option<&str>, b: Value| {
        let mut r = client()
            .post(format!("{base}/v1beta/models/{path}"))
            .json(&b);
        if let Some(k) = key {
            r = r.header("x-goog-api-key", k);
        }
        r
    };
    let contents = json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]});
    let (status, err) = body(
        call("gemini-2.5-flash:generateContent", None, contents.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT")),
        "a bad key is 400, not 401"
    );
    assert_eq!(err["error"]["details"][0]["reason"], "API_KEY_INVALID");
    let (status, g) = body(
        call(
            "gemini-2.5-flash:generateContent",
            Some("k"),
            contents.clone(),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(g["candidates"][0]["content"]["parts"][0]["text"].is_string());
    assert_eq!(g["candidates"][0]["finishReason"], "STOP");
    assert!(g["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);
    let (_, img) = body(
        call(
            "gemini-2.5-flash-image:generateContent",
            Some("k"),
            contents,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let part = &img["candidates"][0]["content"]["parts"][1]["inlineData"];
    assert_eq!(part["mimeType"], "image/png");
    assert!(
        part["data"].as_str().unwrap().len() > 1_000_000,
        "a real-size image"
    );
    let blocked = json!({"contents": [{"parts": [{"text": "x sim:content_policy"}]}]});
    let (status, b) = body(
        call("gemini-2.5-pro:generateContent", Some("k"), blocked)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, b["promptFeedback"]["blockReason"].as_str()),
        (200, Some("SAFETY"))
    );
    assert!(b.get("candidates").is_none());
    let limited = json!({"contents": [{"parts": [{"text": "sim:rate_limit"}]}]});
    let (status, l) = body(
        call("gemini-2.5-pro:generateContent", Some("k"), limited)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, l["error"]["status"].as_str()),
        (429, Some("RESOURCE_EXHAUSTED"))
    );
    assert!(
        l["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["retryDelay"].is_string())
    );

    let (status, p) = body(
        call(
            "imagen-4.0-generate-001:predict",
            Some("k"),
            json!({"instances": [{"prompt": "cat"}], "parameters": {"sampleCount": 2}}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(p["predictions"].as_array().unwrap().len(), 2);
    assert_eq!(p["predictions"][0]["mimeType"], "image/png");

    let (status, op) = body(
        call(
            "veo-3.1-generate-preview:predictLongRunning",
            Some("k"),
            json!({"instances": [{"prompt": "waves"}], "parameters": {"durationSeconds": 4}}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let name = op["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("models/veo-3.1-generate-preview/operations/"));
    let seen = poll_until(
        || {
            client()
                .get(format!("{base}/v1beta/{name}"))
                .header("x-goog-api-key", "k")
        },
        |b| b["done"] == true,
    )
    .await;
    assert!(
        seen[0].get("done").is_none(),
        "running: `done` absent, not false"
    );
    let uri = seen.last().unwrap()["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"].as_str().unwrap().to_owned();
    assert_eq!(
        client().get(&uri).send().await.unwrap().status(),
        400,
        "the download needs the key"
    );
    let video = client()
        .get(&uri)
        .header("x-goog-api-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(video.headers()["content-type"], "video/mp4");
    let (_, filtered) = body(
        call(
            "veo-3.1-generate-preview:predictLongRunning",
            Some("k"),
            json!({"instances": [{"prompt": "x sim:content_policy"}]}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let fname = filtered["name"].as_str().unwrap().to_owned();
    let seen = poll_until(
        || {
            client()
                .get(format!("{base}/v1beta/{fname}"))
                .header("x-goog-api-key", "k")
        },
        |b| b["done"] == true,
    )
    .await;
    let r = &seen.last().unwrap()["response"]["generateVideoResponse"];
    assert!(
        r.get("generatedSamples").is_none() && r["raiMediaFilteredCount"] == 1,
        "done, no samples: a safety failure"
    );
}

#[tokio::test]
async fn bfl_polling_url_and_statuses() {
    let sim = sim().await;
    let base = sim.base_url("bfl");
    let create = |b: Value| {
        client()
            .post(format!("{base}/v1/flux-pro-1.1"))
            .header("x-key", "k")
            .json(&b)
    };
    let (status, _) = body(
        client()
            .post(format!("{base}/v1/flux-pro-1.1"))
            .json(&json!({"prompt": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, bad) = body(create(json!({"width": 512})).send().await.unwrap()).await;
    assert_eq!(status, 422);
    assert!(bad["detail"][0]["loc"].is_array());
    let (status, c) = body(
        create(json!({"prompt": "a fox", "width": 1024, "height": 768}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        c["cost"].as_f64().unwrap() > 0.0,
        "billing in the submit answer"
    );
    let url = c["polling_url"].as_str().unwrap().to_owned();
    assert!(url.contains("/v1/get_result?id="));
    let seen = poll_until(
        || client().get(&url).header("x-key", "k"),
        |b| b["status"] != "Pending",
    )
    .await;
    let done = seen.last().unwrap();
    assert_eq!(done["status"], "Ready");
    let sample = client()
        .get(done["result"]["sample"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(sample.headers()["content-type"], "image/jpeg");
    assert!(sample.bytes().await.unwrap().len() > 100_000);
    let (_, m) = body(
        create(json!({"prompt": "x sim:content_policy"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let murl = m["polling_url"].as_str().unwrap().to_owned();
    let seen = poll_until(
        || client().get(&murl).header("x-key", "k"),
        |b| b["status"] != "Pending",
    )
    .await;
    assert_eq!(seen.last().unwrap()["status"], "Content Moderated");
    let (status, nf) = body(
        client()
            .get(format!("{base}/v1/get_result?id=nope"))
            .header("x-key", "k")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, nf["status"].as_str()),
        (404, Some("Task not found"))
    );
    let (status, q) = body(
        create(json!({"prompt": "x sim:insufficient_quota"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, q["detail"].is_string()), (402, true));
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn kling_jwt_polling_and_callbacks() {
    use executor_simulators::config::{
        DEFAULT_KLING_ACCESS_KEY as AK, DEFAULT_KLING_SECRET_KEY as SK,
    };
    use executor_simulators::kling::token;
    let sim = sim().await;
    let base = sim.base_url("kling");
    let good = token(AK, SK, now() + 1800, now() - 5);
    let create = |tok: &str, b: Value| {
        client()
            .post(format!("{base}/v1/videos/text2video"))
            .header("authorization", format!("Bearer {tok}"))
            .json(&b)
    };
    let (status, e) = body(
        client()
            .post(format!("{base}/v1/videos/text2video"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, e["code"].as_u64()), (401, Some(1001)));
    let (_, e) = body(
        create(
            &token(AK, "wrong", now() + 1800, now() - 5),
            json!({"prompt": "x"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(e["code"], 1002);
    let (_, e) = body(
        create(
            &token(AK, SK, now() - 10, now() - 20),
            json!({"prompt": "x"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(e["code"], 1004);
    let (_, e) = body(
        create(
            &token(AK, SK, now() + 1800, now() + 600),
            json!({"prompt": "x"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(e["code"], 1003);
    let (status, e) = body(
        create(&good, json!({"prompt": "x sim:insufficient_quota"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_u64()),
        (429, Some(1102)),
        "no credit is a 429 that must not be retried"
    );
    let (status, e) = body(
        create(&good, json!({"prompt": "x", "duration": 5}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_u64()),
        (400, Some(1201)),
        "duration is a string"
    );

    let (hook, mut rx) = receiver(0).await;
    let (status, c) = body(create(&good, json!({"model_name": "kling-v2-5-turbo", "prompt": "a cat", "duration": "5", "callback_url": hook})).send().await.unwrap()).await;
    assert_eq!(
        (status, c["code"].as_u64(), c["message"].as_str()),
        (200, Some(0), Some("SUCCEED"))
    );
    assert_eq!(c["data"]["task_status"], "submitted");
    let id = c["data"]["task_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 18);
    let seen = poll_until(
        || {
            client()
                .get(format!("{base}/v1/videos/text2video/{id}"))
                .header("authorization", format!("Bearer {good}"))
        },
        |b| b["data"]["task_status"] == "succeed",
    )
    .await;
    let data = &seen.last().unwrap()["data"];
    assert!(data["task_result"]["videos"][0]["url"].is_string());
    assert!(data["final_unit_deduction"].is_string());
    let first = next_hook(&mut rx).await.json();
    assert_eq!(first["task_status"], "processing");
    let last = next_hook(&mut rx).await.json();
    assert_eq!(last["task_status"], "succeed");
}

#[tokio::test]
async fn meshy_tasks_and_models() {
    let sim = sim().await;
    let base = sim.base_url("meshy");
    let post = |path: &str, b: Value| {
        client()
            .post(format!("{base}{path}"))
            .bearer_auth("k")
            .json(&b)
    };
    let (status, c) = body(
        post(
            "/openapi/v2/text-to-3d",
            json!({"mode": "preview", "prompt": "a chair", "ai_model": "meshy-5"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let id = c["result"].as_str().unwrap().to_owned();
    let seen = poll_until(
        || {
            client()
                .get(format!("{base}/openapi/v2/text-to-3d/{id}"))
                .bearer_auth("k")
        },
        |b| b["status"] == "SUCCEEDED",
    )
    .await;
    assert_eq!(seen[0]["status"], "PENDING");
    let done = seen.last().unwrap();
    assert!(done["texture_urls"].is_array(), "text-to-3d: an array");
    let glb = reqwest::get(done["model_urls"]["glb"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&glb[..4], b"glTF");
    assert!(glb.len() > 2_000_000);
    let (_, i) = body(
        post(
            "/openapi/v1/image-to-3d",
            json!({"image_url": "https://x/y.png"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let iid = i["result"].as_str().unwrap().to_owned();
    let seen = poll_until(
        || {
            client()
                .get(format!("{base}/openapi/v1/image-to-3d/{iid}"))
                .bearer_auth("k")
        },
        |b| b["status"] == "SUCCEEDED",
    )
    .await;
    assert!(
        seen.last().unwrap()["texture_urls"].is_object(),
        "image-to-3d: one object"
    );
    let (_, s) = body(
        post(
            "/openapi/v2/text-to-3d",
            json!({"mode": "preview", "prompt": "slow sim:duration=5000"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let sid = s["result"].as_str().unwrap().to_owned();
    assert_eq!(
        client()
            .delete(format!("{base}/openapi/v2/text-to-3d/{sid}"))
            .bearer_auth("k")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (_, t) = body(
        client()
            .get(format!("{base}/openapi/v2/text-to-3d/{sid}"))
            .bearer_auth("k")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(t["status"], "CANCELED");
    let (status, q) = body(
        post(
            "/openapi/v2/text-to-3d",
            json!({"mode": "preview", "prompt": "sim:insufficient_quota"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, q["code"].as_str()),
        (402, Some("InsufficientCredits"))
    );
}

#[tokio::test]
async fn assemblyai_transcripts_and_webhook_header() {
    let sim = sim().await;
    let base = sim.base_url("assemblyai");
    let (status, e) = body(
        client()
            .get(format!("{base}/v2/transcript/nope"))
            .header("authorization", "k")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (
            400,
            Some("Transcript lookup error, transcript id not found")
        ),
        "unknown id is 400"
    );
    let (status, _) = body(
        client()
            .post(format!("{base}/v2/transcript"))
            .json(&json!({"audio_url": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let up: Value = client()
        .post(format!("{base}/v2/upload"))
        .header("authorization", "k")
        .body(vec![0u8; 160_000])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (hook, mut rx) = receiver(0).await;
    let (status, t) = body(client().post(format!("{base}/v2/transcript")).header("authorization", "k")
        .json(&json!({"audio_url": up["upload_url"], "speech_models": ["universal-2"], "webhook_url": hook,
            "webhook_auth_header_name": "X-Hook-Secret", "webhook_auth_header_value": "s3cret"})).send().await.unwrap()).await;
    assert_eq!((status, t["status"].as_str()), (200, Some("queued")));
    let id = t["id"].as_str().unwrap().to_owned();
    let h = next_hook(&mut rx).await;
    assert_eq!(h.header("x-hook-secret"), "s3cret");
    assert_eq!(
        h.json(),
        json!({"transcript_id": id, "status": "completed"})
    );
    let (_, done) = body(
        client()
            .get(format!("{base}/v2/transcript/{id}"))
            .header("authorization", "k")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(done["audio_duration"], 10);
    assert!(done["text"].is_string() && done["words"].is_array());
    let (_, f) = body(
        client()
            .post(format!("{base}/v2/transcript"))
            .header("authorization", "k")
            .json(&json!({"audio_url": "https://x/a.mp3 sim:fail"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let fid = f["id"].as_str().unwrap().to_owned();
    let seen = poll_until(
        || {
            client()
                .get(format!("{base}/v2/transcript/{fid}"))
                .header("authorization", "k")
        },
        |b| b["status"] == "error" || b["status"] == "completed",
    )
    .await;
    assert!(
        seen.last().unwrap()["error"]
            .as_str()
            .unwrap()
            .starts_with("Download error")
    );
}

#[tokio::test]
async fn deepgram_listen_callback_and_speak() {
    let sim = sim().await;
    let base = sim.base_url("deepgram");
    let (status, _) = body(
        client()
            .post(format!("{base}/v1/listen"))
            .json(&json!({"url": "u"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, r) = body(
        client()
            .post(format!("{base}/v1/listen?model=nova-3"))
            .header("authorization", "Token k")
            .json(&json!({"url": "https://x/a.wav"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(r["results"]["channels"][0]["alternatives"][0]["transcript"].is_string());
    assert!(r["metadata"]["duration"].as_f64().unwrap() > 0.0);
    let (status, e) = body(
        client()
            .post(format!("{base}/v1/listen"))
            .header("authorization", "Token k")
            .body(r#"{"url":"https://x/a.wav"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, e["err_code"].as_str()),
        (400, Some("Bad Request")),
        "JSON sent as audio"
    );
    let (hook, mut rx) = receiver(0).await;
    let (status, a) = body(
        client()
            .post(format!(
                "{base}/v1/listen?model=nova-3&callback={hook}&extra=callback_secret:abc"
            ))
            .header("authorization", "Token k")
            .header("content-type", "audio/wav")
            .body(vec![0u8; 32_000])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let rid = a["request_id"].as_str().unwrap().to_owned();
    assert_eq!(a.as_object().unwrap().len(), 1, "only the request id");
    let h = next_hook(&mut rx).await.json();
    assert_eq!(h["metadata"]["request_id"], rid.as_str());
    assert_eq!(h["metadata"]["extra"]["callback_secret"], "abc");
    let speak = client()
        .post(format!("{base}/v1/speak?model=aura-2-thalia-en"))
        .header("authorization", "Token k")
        .json(&json!({"text": "Hello there, friend."}))
        .send()
        .await
        .unwrap();
    assert_eq!(speak.status(), 200);
    assert_eq!(speak.headers()["content-type"], "audio/mpeg");
    assert_eq!(speak.bytes().await.unwrap()[0], 0xFF);
}

#[tokio::test]
async fn huggingface_loading_then_image() {
    let sim = sim().await;
    let base = sim.base_url("huggingface");
    let req = || {
        client()
            .post(format!(
                "{base}/hf-inference/models/black-forest-labs/FLUX.1-schnell"
            ))
            .bearer_auth("hf_x")
            .json(&json!({"inputs": "a cat sim:model_loading=1"}))
    };
    let first = req().send().await.unwrap();
    assert!(first.headers().contains_key("ratelimit"));
    let (status, l) = body(first).await;
    assert_eq!(status, 503);
    assert!(l["error"].as_str().unwrap().contains("currently loading"));
    assert!(l["estimated_time"].as_f64().is_some());
    let second = req().send().await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["content-type"], "image/jpeg");
    assert!(second.bytes().await.unwrap().len() > 100_000);
    let (status, c) = body(client().post(format!("{base}/v1/chat/completions")).bearer_auth("hf_x").json(&json!({"model": "meta-llama/Llama-3.1-8B-Instruct:cerebras", "messages": [{"role": "user", "content": "hi"}]})).send().await.unwrap()).await;
    assert_eq!(
        (status, c["object"].as_str()),
        (200, Some("chat.completion"))
    );
    let (status, e) = body(
        client()
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, e["error"].is_string()), (401, true));
}

#[tokio::test]
async fn ideogram_and_recraft_images() {
    let sim = sim().await;
    let ideo = sim.base_url("ideogram");
    let form = Form::new()
        .text("prompt", "a lighthouse")
        .text("aspect_ratio", "16x9")
        .text("num_images", "2");
    let (status, r) = body(
        client()
            .post(format!("{ideo}/v1/ideogram-v3/generate"))
            .header("api-key", "k")
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(r["created"].is_string(), "created is a date-time string");
    assert_eq!(r["data"].as_array().unwrap().len(), 2);
    assert_eq!(r["data"][0]["resolution"], "1024x576");
    assert!(r["data"][0]["url"].as_str().unwrap().contains("?exp="));
    let (status, u) = body(
        client()
            .post(format!("{ideo}/v1/ideogram-v3/generate"))
            .header("api-key", "k")
            .json(&json!({"prompt": "x sim:unsafe_image"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, u["data"][0]["is_image_safe"].as_bool()),
        (200, Some(false))
    );
    assert!(u["data"][0]["url"].is_null());
    let (status, p) = body(
        client()
            .post(format!("{ideo}/v1/ideogram-v3/generate"))
            .header("api-key", "k")
            .json(&json!({"prompt": "x sim:content_policy"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, p["error"].is_string()), (422, true));
    assert_eq!(
        client()
            .post(format!("{ideo}/v1/ideogram-v3/generate"))
            .json(&json!({"prompt": "x"}))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let rec = sim.base_url("recraft");
    let (status, r) = body(
        client()
            .post(format!("{rec}/v1/images/generations"))
            .bearer_auth("k")
            .json(&json!({"prompt": "fox", "model": "recraftv3", "n": 2}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, r["credits"].as_u64()), (200, Some(80)));
    let img = reqwest::get(r["data"][0]["url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(img.headers()["content-type"], "image/webp");
    let (_, v) = body(
        client()
            .post(format!("{rec}/v1/images/generations"))
            .bearer_auth("k")
            .json(&json!({"prompt": "fox", "model": "recraftv3_vector"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let svg = reqwest::get(v["data"][0]["url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
}

#[tokio::test]
async fn openai_compatible_hosts_keep_their_paths_and_envelopes() {
    let sim = sim().await;
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    for (host, path) in [
        ("together", "/v1"),
        ("fireworks", "/inference/v1"),
        ("groq", "/openai/v1"),
        ("deepinfra", "/v1/openai"),
        ("mistral", "/v1"),
    ] {
        let url = format!("{}{path}/chat/completions", sim.base_url(host));
        let (status, c) = body(
            client()
                .post(&url)
                .bearer_auth("k")
                .json(&chat)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, c["object"].as_str()),
            (200, Some("chat.completion")),
            "{host}"
        );
        assert!(c["usage"]["total_tokens"].as_u64().unwrap() > 0, "{host}");
        let (status, _) = body(client().post(&url).json(&chat).send().await.unwrap()).await;
        assert_eq!(status, 401, "{host}");
    }
    assert_eq!(
        client()
            .post(format!("{}/v1/chat/completions", sim.base_url("deepinfra")))
            .bearer_auth("k")
            .json(&chat)
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "DeepInfra is under /v1/openai"
    );
    let limited = |host: &str, path: &str| {
        client().post(format!("{}{path}/chat/completions", sim.base_url(host))).bearer_auth("k")
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": format!("{host} sim:rate_limit")}]}))
    };
    let (status, m) = body(limited("mistral", "/v1").send().await.unwrap()).await;
    assert_eq!(
        (status, m["object"].as_str(), m["code"].as_str()),
        (429, Some("error"), Some("1300")),
        "Mistral: code is a digit string"
    );
    let (_, g) = body(limited("groq", "/openai/v1").send().await.unwrap()).await;
    assert_eq!(
        (g["error"]["type"].as_str(), g["error"]["code"].as_str()),
        (Some("tokens"), Some("rate_limit_exceeded"))
    );
    let (_, d) = body(limited("deepinfra", "/v1/openai").send().await.unwrap()).await;
    assert!(d["error"].is_string(), "DeepInfra: a plain string");
    let (status, f) = body(client().post(format!("{}/openai/v1/chat/completions", sim.base_url("groq"))).bearer_auth("k").json(&json!({"model": "m", "messages": [{"role": "user", "content": "sim:flex_capacity"}]})).send().await.unwrap()).await;
    assert_eq!(
        (status, f["error"]["code"].as_str()),
        (498, Some("capacity_exceeded"))
    );
    let tools = json!({"model": "m", "messages": [{"role": "user", "content": "w"}], "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]});
    let (_, t) = body(
        client()
            .post(format!("{}/v1/chat/completions", sim.base_url("mistral")))
            .bearer_auth("k")
            .json(&tools)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(t["choices"][0]["finish_reason"], "tool_calls");
    assert!(t["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].is_string());
    let (status, i) = body(client().post(format!("{}/v1/images/generations", sim.base_url("together"))).bearer_auth("k")
        .json(&json!({"model": "black-forest-labs/FLUX.1-schnell", "prompt": "x", "response_format": "base64", "width": 256, "height": 256})).send().await.unwrap()).await;
    assert_eq!(
        (status, i["data"][0]["type"].as_str()),
        (200, Some("b64_json")),
        "asks `base64`, answers `b64_json`"
    );
    let form = Form::new().text("model", "whisper-large-v3-turbo").part(
        "file",
        reqwest::multipart::Part::bytes(vec![0u8; 48_000]).file_name("a.mp3"),
    );
    let (status, tr) = body(
        client()
            .post(format!(
                "{}/openai/v1/audio/transcriptions",
                sim.base_url("groq")
            ))
            .bearer_auth("k")
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, tr["text"].is_string()), (200, true));
    let _ = Duration::ZERO;
}
