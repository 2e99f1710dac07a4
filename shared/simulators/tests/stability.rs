//! Stability simulator: multipart requests, both answer forms, the filtered-success trap and
//! the `{id, name, errors}` envelopes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{client, sim};
use executor_simulators::{SimConfig, SimState, router};
use reqwest::multipart::Form;
use serde_json::Value;
use tower::ServiceExt;

const KEY: &str = "Bearer sk-test";

fn form(fields: &[(&str, &str)]) -> Form {
    fields.iter().fold(Form::new(), |f, (k, v)| {
        f.text((*k).to_owned(), (*v).to_owned())
    })
}

async fn generate(
    base: &str,
    service: &str,
    accept: Option<&str>,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client()
        .post(format!("{base}/v2beta/stable-image/generate/{service}"))
        .header("authorization", KEY)
        .multipart(form(fields));
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    req.send().await.unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn image_bytes_with_finish_reason_and_seed_headers() {
    let sim = sim().await;
    let base = sim.base_url("stability");
    let resp = generate(
        &base,
        "core",
        Some("image/*"),
        &[
            ("prompt", "a red fox in the snow"),
            ("aspect_ratio", "16:9"),
            ("seed", "42"),
            ("output_format", "png"),
            ("style_preset", "photographic"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type").as_deref(), Some("image/png"));
    assert_eq!(header(&resp, "finish-reason").as_deref(), Some("SUCCESS"));
    assert_eq!(header(&resp, "seed").as_deref(), Some("42"));
    let rid = header(&resp, "x-request-id").unwrap();
    assert!(rid.len() == 32 && rid.chars().all(|c| c.is_ascii_hexdigit()));
    let bytes = resp.bytes().await.unwrap();
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height()), (1344, 768));
    assert!(bytes.len() > 1_000_000, "{} bytes", bytes.len());

    // No `accept` at all is `image/*`; a seed of 0 (or none) means a random one.
    let resp = generate(&base, "ultra", None, &[("prompt", "a lake"), ("seed", "0")]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type").as_deref(), Some("image/png"));
    let seed: u64 = header(&resp, "seed").unwrap().parse().unwrap();
    assert!((1..=4_294_967_294).contains(&seed));

    let stats = sim.stats().provider("stability");
    assert_eq!(
        (stats.creates, stats.create_rejections, stats.inflight),
        (2, 0, 0)
    );
    assert_eq!(
        sim.stats()
            .creates_for_prompt("stability", "a red fox in the snow"),
        1
    );
}

#[tokio::test]
async fn json_answer_carries_image_seed_and_finish_reason() {
    let sim = sim().await;
    let resp = generate(
        &sim.base_url("stability"),
        "sd3",
        Some("application/json"),
        &[
            ("prompt", "a castle"),
            ("seed", "7"),
            ("aspect_ratio", "9:16"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/json; type=image/png")
    );
    assert!(header(&resp, "finish-reason").is_none());
    assert!(header(&resp, "seed").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["finish_reason"], "SUCCESS");
    assert_eq!(body["seed"], 7);
    let png = STANDARD.decode(body["image"].as_str().unwrap()).unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (768, 1344));
}

#[tokio::test]
async fn content_filtered_is_a_200_with_an_image() {
    let sim = sim().await;
    let base = sim.base_url("stability");
    let resp = generate(
        &base,
        "core",
        Some("image/*"),
        &[("prompt", "something sim:content_policy")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "finish-reason").as_deref(),
        Some("CONTENT_FILTERED")
    );
    let bytes = resp.bytes().await.unwrap();
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    // Blurred: one flat colour.
    assert!(
        img.pixels()
            .all(|p| *p == img.pixels().next().copied().unwrap())
    );

    let resp = generate(
        &base,
        "core",
        Some("application/json"),
        &[("prompt", "again sim:content_policy")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["finish_reason"], "CONTENT_FILTERED");
    assert!(!body["image"].as_str().unwrap().is_empty());
    // Filtered generations are still answered 200: they count as creates.
    assert_eq!(sim.stats().provider("stability").creates, 2);
}

#[tokio::test]
async fn empty_output_is_a_200_with_no_bytes() {
    let sim = sim().await;
    let base = sim.base_url("stability");
    // Directives are read from every field, not only the prompt.
    let resp = generate(
        &base,
        "core",
        Some("image/*"),
        &[
            ("prompt", "a tree"),
            ("negative_prompt", "sim:empty_output"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "finish-reason").as_deref(), Some("SUCCESS"));
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = generate(
        &base,
        "core",
        Some("application/json"),
        &[("prompt", "a tree sim:empty_output")],
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["image"], "");
}

#[tokio::test]
async fn error_envelopes() {
    let sim = sim().await;
    let base = sim.base_url("stability");
    async fn envelope(resp: reqwest::Response) -> (u16, String, String, String) {
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        (
            status,
            body["id"].as_str().unwrap().to_owned(),
            body["name"].as_str().unwrap().to_owned(),
            body["errors"][0].as_str().unwrap().to_owned(),
        )
    }

    let url = format!("{base}/v2beta/stable-image/generate/core");
    let unauth = client()
        .post(&url)
        .multipart(form(&[("prompt", "x")]))
        .send()
        .await
        .unwrap();
    let (status, _, name, _) = envelope(unauth).await;
    assert_eq!((status, name.as_str()), (401, "unauthorized"));
    let bad_key = client()
        .post(&url)
        .header("authorization", "Bearer invalid-key")
        .multipart(form(&[("prompt", "x")]))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 401);

    let (status, id, name, message) =
        envelope(generate(&base, "core", None, &[("negative_prompt", "dark")]).await).await;
    assert_eq!((status, name.as_str()), (400, "bad_request"));
    assert!(message.starts_with("prompt"), "{message}");
    assert!(id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()));
    let (status, _, _, message) = envelope(
        generate(
            &base,
            "core",
            None,
            &[("prompt", "x"), ("aspect_ratio", "7:5")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(message.starts_with("aspect_ratio"));
    let (status, _, _, message) =
        envelope(generate(&base, "core", None, &[("prompt", "x sim:invalid")]).await).await;
    assert_eq!(status, 400);
    assert!(message.starts_with("prompt: "));
    let json_body = client()
        .post(&url)
        .header("authorization", KEY)
        .json(&serde_json::json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(json_body).await.0, 400);

    let limited = vec![("prompt", "busy sim:rate_limit=1")];
    let (status, id, name, message) = envelope(generate(&base, "core", None, &limited).await).await;
    assert_eq!(
        (status, id.as_str(), name.as_str()),
        (429, "rate_limit_exceeded", "rate_limit_exceeded")
    );
    assert!(message.contains("150 requests within a 10 second period"));
    assert_eq!(generate(&base, "core", None, &limited).await.status(), 200);

    let flaky = vec![("prompt", "flaky sim:server_error=1")];
    let (status, _, name, message) = envelope(generate(&base, "core", None, &flaky).await).await;
    assert_eq!((status, name.as_str()), (500, "internal_error"));
    assert!(message.starts_with("An unexpected server error"));
    assert_eq!(generate(&base, "core", None, &flaky).await.status(), 200);
    let (status, _, name, _) =
        envelope(generate(&base, "core", None, &[("prompt", "x sim:fail")]).await).await;
    assert_eq!((status, name.as_str()), (500, "internal_error"));

    let (status, _, name, message) = envelope(
        generate(
            &base,
            "core",
            None,
            &[("prompt", "x sim:insufficient_quota")],
        )
        .await,
    )
    .await;
    assert_eq!((status, name.as_str()), (402, "payment_required"));
    assert!(message.contains("platform.stability.ai/account/credits"));

    assert_eq!(
        generate(&base, "turbo", None, &[("prompt", "x")])
            .await
            .status(),
        404
    );
    let stats = sim.stats().provider("stability");
    assert_eq!((stats.creates, stats.create_rejections), (2, 10));
}

#[tokio::test]
async fn hang_delays_the_answer() {
    let sim = sim().await;
    let slow = client()
        .post(format!(
            "{}/v2beta/stable-image/generate/core",
            sim.base_url("stability")
        ))
        .header("authorization", KEY)
        .timeout(Duration::from_millis(100))
        .multipart(form(&[("prompt", "zzz sim:hang=1000")]))
        .send()
        .await;
    assert!(slow.unwrap_err().is_timeout());
}

#[tokio::test]
async fn raw_multipart_through_the_router() {
    let state = SimState::new(SimConfig::default(), "http://sim.test").unwrap();
    let body = "--XYZ\r\ncontent-disposition: form-data; name=\"prompt\"\r\n\r\na boat\r\n--XYZ\r\ncontent-disposition: form-data; name=\"output_format\"\r\n\r\nwebp\r\n--XYZ--\r\n";
    let request = Request::post("/stability/v2beta/stable-image/generate/core")
        .header("authorization", "Bearer k")
        .header("accept", "application/json")
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body(Body::from(body))
        .unwrap();
    let resp = router(state).oneshot(request).await.unwrap();
    assert_eq!(resp.status(), 200);
    // `output_format` is honoured: WebP bytes, typed so.
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; type=image/webp"
    );
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["finish_reason"], "SUCCESS");
    use base64::Engine as _;
    let image = base64::engine::general_purpose::STANDARD
        .decode(body["image"].as_str().unwrap())
        .unwrap();
    assert_eq!(&image[8..12], b"WEBP");
}
