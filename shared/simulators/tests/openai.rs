//! OpenAI simulator against reqwest: image generation (b64 and url), chat, error envelopes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{assert_png, client, sim};
use serde_json::{Value, json};

const KEY: &str = "Bearer sk-test";

async fn post(base: &str, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{base}{path}"))
        .header("authorization", KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn gpt_image_returns_png_b64_and_usage() {
    let sim = sim().await;
    let resp = post(
        &sim.base_url("openai"),
        "/v1/images/generations",
        json!({"model": "gpt-image-1", "prompt": "a red square", "n": 2, "size": "1024x1536"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    assert!(
        resp.headers()
            .contains_key("x-ratelimit-remaining-requests")
    );
    let body: Value = resp.json().await.unwrap();
    assert!(body["created"].is_u64());
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let png = STANDARD
        .decode(body["data"][0]["b64_json"].as_str().unwrap())
        .unwrap();
    let img = image::load_from_memory(&png).unwrap();
    // At the size asked for (1024x1536), megabytes as OpenAI's are.
    assert_eq!((img.width(), img.height()), (1024, 1536));
    assert!(png.len() > 1_000_000, "{} bytes", png.len());
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
    assert!(usage["input_tokens_details"]["text_tokens"].is_u64());
    assert_eq!(usage["input_tokens_details"]["image_tokens"], 0);
}

#[tokio::test]
async fn dalle_url_points_at_served_png() {
    let sim = sim().await;
    let resp = post(
        &sim.base_url("openai"),
        "/v1/images/generations",
        json!({"model": "dall-e-3", "prompt": "a lighthouse", "response_format": "url"}),
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    assert!(body["data"][0]["revised_prompt"].is_string());
    assert!(body.get("usage").is_none());
    assert_png(body["data"][0]["url"].as_str().unwrap()).await;
}

#[tokio::test]
async fn error_envelopes() {
    let sim = sim().await;
    let base = sim.base_url("openai");
    let err = |v: &Value| {
        (
            v["error"]["type"].as_str().map(str::to_owned),
            v["error"]["code"].as_str().map(str::to_owned),
        )
    };

    let unauth = client()
        .post(format!("{base}/v1/images/generations"))
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    let v: Value = unauth.json().await.unwrap();
    assert_eq!(err(&v).1.as_deref(), Some("invalid_api_key"));
    assert!(v["error"].get("param").is_some());

    let body = json!({"model": "gpt-image-1", "prompt": "p sim:rate_limit=1"});
    let limited = post(&base, "/v1/images/generations", body.clone()).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(limited.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(
        err(&limited.json().await.unwrap()).1.as_deref(),
        Some("rate_limit_exceeded")
    );
    assert_eq!(
        post(&base, "/v1/images/generations", body).await.status(),
        200
    );

    let quota = post(
        &base,
        "/v1/images/generations",
        json!({"prompt": "q sim:insufficient_quota"}),
    )
    .await;
    assert_eq!(quota.status(), 429);
    assert_eq!(
        err(&quota.json().await.unwrap()).1.as_deref(),
        Some("insufficient_quota")
    );

    let blocked = post(
        &base,
        "/v1/images/generations",
        json!({"model": "gpt-image-1", "prompt": "b sim:content_policy"}),
    )
    .await;
    assert_eq!(blocked.status(), 400);
    assert_eq!(
        err(&blocked.json().await.unwrap()).1.as_deref(),
        Some("moderation_blocked")
    );
    let blocked = post(
        &base,
        "/v1/images/generations",
        json!({"model": "dall-e-2", "prompt": "b sim:content_policy"}),
    )
    .await;
    assert_eq!(
        err(&blocked.json().await.unwrap()).1.as_deref(),
        Some("content_policy_violation")
    );

    let invalid = post(
        &base,
        "/v1/images/generations",
        json!({"prompt": "i", "size": "huge"}),
    )
    .await;
    assert_eq!(invalid.status(), 400);
    let v: Value = invalid.json().await.unwrap();
    assert_eq!(
        (v["error"]["type"].as_str(), v["error"]["param"].as_str()),
        (Some("invalid_request_error"), Some("size"))
    );

    let failed = post(
        &base,
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "sim:fail"}]}),
    )
    .await;
    assert_eq!(failed.status(), 500);
    assert_eq!(
        err(&failed.json().await.unwrap()).0.as_deref(),
        Some("server_error")
    );

    let stats = sim.stats().provider("openai");
    assert_eq!(
        (stats.creates, stats.create_rejections, stats.inflight),
        (1, 7, 0)
    );
}

#[tokio::test]
async fn chat_completion_shape() {
    let sim = sim().await;
    let resp = post(
        &sim.base_url("openai"),
        "/v1/chat/completions",
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(sim.stats().creates_for_prompt("openai", "hello there"), 1);
}
