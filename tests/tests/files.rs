//! Inputs by upload (issue 20, item 2), end to end through the HTTP API on both backends: the
//! embedded one (SQLite and files) and the AWS one (the Lambda app over S3, DynamoDB and SQS
//! on moto server, where a presigned upload is a real S3 presigned PUT).
//!
//! - A multipart upload of a 2 MB PNG is stored, typed by its bytes, and its content URL
//!   serves the same bytes (embedded: itself; S3: a redirect to a presigned GET).
//! - Named by id in an input, the file becomes its content URL in the execution's request,
//!   and the execution runs.
//! - Files are the tenant's: another tenant gets 404, and naming the file in its input is a
//!   400 that names the field.
//! - Bytes that are not what the declared type says are refused; a presigned upload is
//!   pending until its bytes arrive, then ready (or refused and removed when they are not
//!   what was declared).
//! - A file expires; a deleted file is gone, and so is its content URL.
//!
//! Needs moto server (scripts/services.sh) for the `aws_` tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::{Client, CreateOptions};
use executor_lifecycle::Engine;
use executor_tests::Harness;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Takes an image URL marked `x-media: {kind: image, max_bytes: 10485760}`.
const MODEL: &str = "fal-ai/kling-video/v2.1/standard/image-to-video";

struct Sys {
    url: String,
    key: String,
    other_key: String,
    client: Client,
    engine: Arc<Engine>,
    /// Whether uploads go straight to the store (S3) rather than through the API.
    presigned_store: bool,
    _keep: Box<dyn std::any::Any + Send>,
}

async fn embedded() -> Sys {
    let h = Harness::start().await;
    let other_key = "exk_other_files_test_key_0123456789";
    h.sys
        .store
        .add_api_key("other", &executor_api::hash_api_key(other_key))
        .await
        .unwrap();
    Sys {
        url: h.sys.url.clone(),
        key: h.sys.dev_key.clone(),
        other_key: other_key.into(),
        client: Client::new(&h.sys.url, &h.sys.dev_key).unwrap(),
        engine: h.sys.engine.clone(),
        presigned_store: false,
        _keep: Box::new(h),
    }
}

async fn aws() -> Sys {
    let a = executor_tests::aws_sys::start("files", "acme", |_| {}).await;
    let other_key = format!("exk_other_{}", ulid::Ulid::new());
    a.app
        .backend
        .guards
        .add_api_key("other", &executor_api::hash_api_key(&other_key))
        .await
        .unwrap();
    Sys {
        client: Client::new(&a.url, &a.key).unwrap(),
        url: a.url.clone(),
        key: a.key.clone(),
        other_key,
        engine: a.app.engine.clone(),
        presigned_store: true,
        _keep: Box::new(a),
    }
}

/// A PNG of `n` bytes: a real signature and header chunk, then noise (what a provider's
/// image is to a type check: its first bytes).
fn png(n: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x04\0\0\0\x04\0\x08\x06\0\0\0".to_vec();
    let mut x: u32 = 12345;
    while b.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        b.push((x >> 16) as u8);
    }
    b
}

fn mp4() -> Vec<u8> {
    let mut b = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    b.resize(4096, 7);
    b
}

async fn upload(
    sys: &Sys,
    key: &str,
    name: &str,
    ctype: &str,
    bytes: Vec<u8>,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str(ctype)
            .unwrap(),
    );
    for (k, v) in extra {
        form = form.text(k.to_string(), v.to_string());
    }
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/files", sys.url))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn call(sys: &Sys, method: reqwest::Method, path: &str, key: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(method, format!("{}{path}", sys.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The bytes behind a content URL (following S3's redirect).
async fn fetch(url: &str) -> (u16, Vec<u8>) {
    let resp = reqwest::get(url).await.unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

async fn run(sys: &Sys, image: &str, key: &str) -> (u16, Value) {
    let client = Client::new(&sys.url, key).unwrap();
    client
        .create(
            MODEL,
            &json!({"image_url": image, "prompt": "the lighthouse, moving"}),
            &CreateOptions::default(),
        )
        .await
        .unwrap()
}

async fn uploads_are_inputs(sys: Sys) {
    // A direct (multipart) upload of a real-size image.
    let bytes = png(2 * 1024 * 1024);
    let (s, f) = upload(
        &sys,
        &sys.key,
        "../shots/lighthouse.png",
        "image/png",
        bytes.clone(),
        &[],
    )
    .await;
    assert_eq!(s, 201, "{f}");
    let id = f["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("file_"), "{f}");
    assert_eq!(f["filename"], "lighthouse.png");
    assert_eq!(f["content_type"], "image/png");
    assert_eq!(f["size_bytes"], bytes.len());
    assert_eq!(f["status"], "ready");
    let url = f["url"].as_str().unwrap().to_string();
    let (s, got) = fetch(&url).await;
    assert_eq!(s, 200);
    assert!(
        got == bytes,
        "the content URL served other bytes ({} of {})",
        got.len(),
        bytes.len()
    );
    let (s, again) = call(
        &sys,
        reqwest::Method::GET,
        &format!("/v1/files/{id}"),
        &sys.key,
    )
    .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["status"], "ready");

    // Named by id in an input: the request holds its content URL, and the execution runs.
    let (s, ex) = run(&sys, &id, &sys.key).await;
    assert!(s == 201 || s == 202, "{s} {ex}");
    let ex_id = ex["id"].as_str().unwrap();
    let request = sys.engine.request(ex_id).await.unwrap().unwrap();
    assert_eq!(request.input["image_url"], url, "{:?}", request.input);
    let done = sys
        .client
        .wait_final(ex_id, Duration::from_secs(60), |_| {})
        .await
        .unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    // Its URL is an input as it is, too.
    let (s, ex) = run(&sys, &url, &sys.key).await;
    assert!(s == 201 || s == 202, "{s} {ex}");

    // Another tenant's: 404, and refused in an input, naming the field.
    let (s, p) = call(
        &sys,
        reqwest::Method::GET,
        &format!("/v1/files/{id}"),
        &sys.other_key,
    )
    .await;
    assert_eq!(s, 404, "{p}");
    let (s, p) = run(&sys, &id, &sys.other_key).await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(p["field"], "/input/image_url", "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("another tenant's"),
        "{p}"
    );
    let (s, p) = call(
        &sys,
        reqwest::Method::DELETE,
        &format!("/v1/files/{id}"),
        &sys.other_key,
    )
    .await;
    assert_eq!(s, 404, "{p}");
    // A wrong token reads nothing.
    let forged = url.replace("token=", "token=0");
    assert_eq!(fetch(&forged).await.0, 404);

    // Bytes that are not what the type says.
    let (s, p) = upload(&sys, &sys.key, "clip.png", "image/png", mp4(), &[]).await;
    assert_eq!(s, 400, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("the bytes are video/mp4"),
        "{p}"
    );
    let (s, p) = upload(
        &sys,
        &sys.key,
        "run.sh",
        "application/x-sh",
        b"#!/bin/sh\n".to_vec(),
        &[],
    )
    .await;
    assert_eq!(s, 400, "{p}");
    let (s, p) = upload(
        &sys,
        &sys.key,
        "a.png",
        "image/png",
        png(100),
        &[("expires_in_seconds", "9999999")],
    )
    .await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(p["field"], "/expires_in_seconds", "{p}");

    // A presigned upload: pending, then the client's PUT of exactly the declared bytes.
    let video = mp4();
    let (s, f) = presign(&sys, "clip.mp4", "video/mp4", video.len()).await;
    assert_eq!(s, 201, "{f}");
    assert_eq!(f["status"], "pending", "{f}");
    let put_url = f["upload"]["url"].as_str().unwrap().to_string();
    assert_eq!(
        put_url.starts_with(&sys.url),
        !sys.presigned_store,
        "on S3 the bytes go straight to the store: {put_url}"
    );
    let vid = f["id"].as_str().unwrap().to_string();
    let (s, p) = run(&sys, &vid, &sys.key).await;
    assert_eq!(s, 400, "a pending file is not an input yet: {p}");
    let s = put(&put_url, "video/mp4", video.clone()).await;
    assert_eq!(s, 200);
    let (s, f) = call(
        &sys,
        reqwest::Method::GET,
        &format!("/v1/files/{vid}"),
        &sys.key,
    )
    .await;
    assert_eq!(s, 200, "{f}");
    assert_eq!(f["status"], "ready", "{f}");
    let (_, got) = fetch(f["url"].as_str().unwrap()).await;
    assert!(got == video);
    // Declared a video, sent an image: refused (embedded at the PUT; S3 takes any bytes, so
    // the check on the next read removes them and says why).
    let (_, f) = presign(&sys, "clip2.mp4", "video/mp4", 4096).await;
    let put_url = f["upload"]["url"].as_str().unwrap().to_string();
    let s = put(&put_url, "video/mp4", png(4096)).await;
    let (_, f) = call(
        &sys,
        reqwest::Method::GET,
        &format!("/v1/files/{}", f["id"].as_str().unwrap()),
        &sys.key,
    )
    .await;
    if sys.presigned_store {
        assert_eq!(s, 200);
        assert!(
            f["problem"]
                .as_str()
                .unwrap()
                .contains("the bytes are image/png"),
            "{f}"
        );
    } else {
        assert_eq!(s, 400);
    }
    assert_eq!(f["status"], "pending", "{f}");

    // Expiry.
    let (s, f) = upload(
        &sys,
        &sys.key,
        "brief.png",
        "image/png",
        png(1000),
        &[("expires_in_seconds", "1")],
    )
    .await;
    assert_eq!(s, 201, "{f}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (s, _) = call(
        &sys,
        reqwest::Method::GET,
        &format!("/v1/files/{}", f["id"].as_str().unwrap()),
        &sys.key,
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(fetch(f["url"].as_str().unwrap()).await.0, 404);

    // Delete.
    let (s, _) = call(
        &sys,
        reqwest::Method::DELETE,
        &format!("/v1/files/{id}"),
        &sys.key,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(
        &sys,
        reqwest::Method::GET,
        &format!("/v1/files/{id}"),
        &sys.key,
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(fetch(&url).await.0, 404);
    let (s, p) = run(&sys, &id, &sys.key).await;
    assert_eq!(s, 400, "{p}");
}

async fn presign(sys: &Sys, name: &str, ctype: &str, size: usize) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/files", sys.url))
        .bearer_auth(&sys.key)
        .json(&json!({"filename": name, "content_type": ctype, "size_bytes": size}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn put(url: &str, ctype: &str, bytes: Vec<u8>) -> u16 {
    reqwest::Client::new()
        .put(url)
        .header("content-type", ctype)
        .body(bytes)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_uploads_are_inputs() {
    uploads_are_inputs(embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_uploads_are_inputs() {
    uploads_are_inputs(aws().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_limit_is_413() {
    let h = Harness::start_with(|o| o.api.max_upload_bytes = 1024 * 1024).await;
    let other = String::new();
    let sys = Sys {
        url: h.sys.url.clone(),
        key: h.sys.dev_key.clone(),
        other_key: other,
        client: Client::new(&h.sys.url, &h.sys.dev_key).unwrap(),
        engine: h.sys.engine.clone(),
        presigned_store: false,
        _keep: Box::new(()),
    };
    let (s, p) = upload(
        &sys,
        &sys.key,
        "big.png",
        "image/png",
        png(1024 * 1024 + 1),
        &[],
    )
    .await;
    assert_eq!(s, 413, "{p}");
    assert_eq!(
        p["type"], "https://executor.dev/problems/payload-too-large",
        "{p}"
    );
    let (s, p) = presign(&sys, "huge.mp4", "video/mp4", 600 * 1024 * 1024).await;
    assert_eq!(s, 413, "{p}");
    assert_eq!(p["field"], "/size_bytes", "{p}");
    drop(h);
}
