//! The step kinds end to end through a driver: a bundle fetches an image by URL
//! (`file-handler`), resizes and converts it (`transform-image`), builds labels in a loop
//! (`for-each`), publishes progress (`publish-event`) and sends the image as a binary body and
//! as a multipart file part (`http-request`) to a local HTTP server standing in for the
//! provider — and the refusals: a loopback URL under production's policy, too many items, an
//! oversized image.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use executor_bundles::{BundleCatalog, CatalogOptions};
use executor_lifecycle::netguard::OutboundPolicy;
use executor_lifecycle::{
    CallContext, Catalog, ErrorClass, ExecutionRequest, ModelDriver, SubmitOutcome,
};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Default)]
struct Seen {
    requests: Vec<(String, String, Vec<u8>)>,
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 9]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn provider(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<Value> {
    use base64::Engine as _;
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    seen.lock()
        .requests
        .push(("binary".into(), ct.clone(), body.to_vec()));
    let (w, h) = image::ImageReader::new(Cursor::new(body.to_vec()))
        .with_guessed_format()
        .unwrap()
        .into_dimensions()
        .unwrap_or((0, 0));
    axum::Json(json!({
        "created": 1,
        "size": format!("{w}x{h}"),
        "output_format": "jpeg",
        "data": [{"b64_json": base64::engine::general_purpose::STANDARD.encode(&body)}],
        "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
        "labels_header": headers.get("x-labels").and_then(|v| v.to_str().ok()),
    }))
}

async fn form(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<Value> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    seen.lock()
        .requests
        .push(("form".into(), ct, body.to_vec()));
    axum::Json(json!({"ok": true}))
}

async fn start_provider() -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let picture = png(64, 48);
    let app = axum::Router::new()
        .route("/v1/images", post(provider))
        .route("/v1/form", post(form))
        .route(
            "/media/pic.png",
            get(move || {
                let p = picture.clone();
                async move { ([("content-type", "image/png")], p) }
            }),
        )
        .route(
            "/media/page.html",
            get(|| async { ([("content-type", "text/html")], "<html></html>") }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

const BUNDLE: &str = r#"
id: test/steps
provider: stepsprov
adapter: openai
shape: immediate
description: every step kind
base_url: https://example.invalid
credentials: []
input_schema:
  type: object
  required: [image_url, tags]
  properties:
    image_url: {type: string}
    tags: {type: array, items: {type: string}}
pricing: {unit: per_output, usd_per_output: 0.01}
steps:
  submit:
    - kind: file-handler
      id: source
      url: "{{ input.image_url }}"
      max_bytes: 1000000
      accept: ["image/"]
    - kind: transform-image
      id: small
      source: "{{ vars.source }}"
      resize: {width: 32, height: 32, fit: contain}
      format: jpeg
      quality: 80
    - kind: for-each
      id: labels
      items: input.tags
      as: tag
      max_items: 3
      collect: label
      steps:
        - kind: transform-payload
          id: label
          template: "{{ loop_index }}:{{ tag | upper }}"
    - kind: publish-event
      id: prepared
      event: progress
      data: {progress: 0.5, message: "resized to {{ vars.small.width }}x{{ vars.small.height }}"}
    - kind: http-request
      id: form
      method: POST
      url: "{{ base_url }}/v1/form"
      multipart:
        prompt: "labels {{ vars.labels | join(',') }}"
        image: "{{ vars.small }}"
    - kind: http-request
      id: generate
      method: POST
      url: "{{ base_url }}/v1/images"
      headers:
        x-labels: "{{ vars.labels | join(',') }}"
      binary:
        data: "{{ vars.small }}"
"#;

fn catalog(base: &str, policy: OutboundPolicy) -> BundleCatalog {
    let mut o = CatalogOptions::from_env();
    o.allow_missing_credentials = true;
    o.media_policy = policy;
    o.base_url_overrides
        .insert("stepsprov".into(), base.to_string());
    BundleCatalog::load_sources(vec![(PathBuf::from("steps.yaml"), BUNDLE.to_string())], o).unwrap()
}

fn ctx(driver: &dyn ModelDriver, input: Value) -> CallContext {
    CallContext {
        final_look: false,
        request: ExecutionRequest {
            retries: None,
            fallbacks: Default::default(),
            id: "ex_steps".into(),
            tenant: "t".into(),
            model: driver.spec().id.clone(),
            input: driver.validate(&input).unwrap(),
            webhook_url: None,
            idempotency_key: None,
            max_duration_ms: 60_000,
            created_at_ms: 0,
        },
        attempt: 1,
        job_id: None,
        callback_url: "http://127.0.0.1:9/cb".into(),
        deadline_ms: i64::MAX,
    }
}

#[tokio::test]
async fn every_step_kind_runs_in_one_submit() {
    let (base, seen) = start_provider().await;
    let cat = catalog(&base, OutboundPolicy::dev());
    let d = cat.get("test/steps").unwrap();
    let input = json!({"image_url": format!("{base}/media/pic.png"), "tags": ["sea", "sky"]});
    let reply = d.submit(&ctx(d.as_ref(), input)).await;
    let SubmitOutcome::Completed(result) = &reply.outcome else {
        panic!("{:?}", reply.outcome)
    };
    // The 64x48 PNG, fitted into 32x32, became a 32x24 JPEG.
    assert_eq!(result.outputs[0].width, Some(32));
    assert_eq!(result.outputs[0].height, Some(24));
    assert_eq!(result.raw["labels_header"], "0:SEA,1:SKY");
    let seen = seen.lock();
    let (_, ct, body) = seen.requests.iter().find(|r| r.0 == "binary").unwrap();
    assert_eq!(ct, "image/jpeg");
    assert_eq!(&body[..3], &[0xFF, 0xD8, 0xFF], "a JPEG");
    let (_, ct, body) = seen.requests.iter().find(|r| r.0 == "form").unwrap();
    assert!(ct.starts_with("multipart/form-data"), "{ct}");
    let text = String::from_utf8_lossy(body);
    assert!(text.contains("labels 0:SEA,1:SKY"), "{text}");
    assert!(
        text.contains("filename=\"image.jpeg\"") && text.contains("Content-Type: image/jpeg"),
        "{text}"
    );
    // The published event is in the reply (the lifecycle records it on the transition).
    assert_eq!(reply.events.len(), 1);
    assert_eq!(reply.events[0]["event"], "progress");
    assert_eq!(reply.events[0]["data"]["message"], "resized to 32x24");
    assert_eq!(reply.calls.len(), 2, "the two provider calls are recorded");
}

#[tokio::test]
async fn refusals_name_the_problem_and_call_nothing() {
    let (base, seen) = start_provider().await;
    // Production's policy: the loopback media URL is refused before any request.
    let strict = catalog(&base, OutboundPolicy::default());
    let d = strict.get("test/steps").unwrap();
    let input = json!({"image_url": format!("{base}/media/pic.png"), "tags": []});
    let reply = d.submit(&ctx(d.as_ref(), input)).await;
    match &reply.outcome {
        SubmitOutcome::Rejected { failure, .. } => {
            assert_eq!(failure.class, ErrorClass::ValidationError);
            assert!(failure.message.contains("loopback"), "{}", failure.message);
        }
        o => panic!("{o:?}"),
    }
    assert!(reply.calls.is_empty());

    let dev = catalog(&base, OutboundPolicy::dev());
    let d = dev.get("test/steps").unwrap();
    // Too many items for the loop.
    let input = json!({"image_url": format!("{base}/media/pic.png"), "tags": ["a", "b", "c", "d"]});
    match d.submit(&ctx(d.as_ref(), input)).await.outcome {
        SubmitOutcome::Rejected { failure, .. } => {
            assert_eq!(failure.class, ErrorClass::ValidationError);
            assert!(failure.message.contains("at most 3"), "{}", failure.message);
        }
        o => panic!("{o:?}"),
    }
    // Not an image.
    let input = json!({"image_url": format!("{base}/media/page.html"), "tags": []});
    match d.submit(&ctx(d.as_ref(), input)).await.outcome {
        SubmitOutcome::Rejected { failure, .. } => {
            assert_eq!(failure.class, ErrorClass::ValidationError);
            assert!(failure.message.contains("text/html"), "{}", failure.message);
        }
        o => panic!("{o:?}"),
    }
    // A data URI bigger than the handler accepts.
    use base64::Engine as _;
    let big = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(vec![0u8; 1_200_000])
    );
    match d
        .submit(&ctx(d.as_ref(), json!({"image_url": big, "tags": []})))
        .await
        .outcome
    {
        SubmitOutcome::Rejected { failure, .. } => {
            assert!(
                failure.message.contains("larger than"),
                "{}",
                failure.message
            )
        }
        o => panic!("{o:?}"),
    }
    assert!(
        seen.lock().requests.is_empty(),
        "no provider call after a refusal"
    );
}

#[test]
fn the_checker_knows_loop_variables_and_collect_targets() {
    let ok = executor_bundles::catalog::check_text(std::path::Path::new("s.yaml"), BUNDLE);
    assert!(ok.is_ok(), "{:?}", ok.err());
    let broken = BUNDLE
        .replace("collect: label", "collect: nothing")
        .replace("{{ tag | upper }}", "{{ tagg | upper }}");
    let issues =
        executor_bundles::catalog::check_text(std::path::Path::new("s.yaml"), &broken).unwrap_err();
    let text = issues
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("undefined variable `tagg`"), "{text}");
    assert!(text.contains("no step `nothing` inside the loop"), "{text}");
    // A nested dict closed with `}}` would end the expression early and send text.
    let early = BUNDLE.replace(
        "data: {progress: 0.5,",
        "data: {nested: \"{{ {'a': {'b': 1}} }}\", progress: 0.5,",
    );
    let issues =
        executor_bundles::catalog::check_text(std::path::Path::new("s.yaml"), &early).unwrap_err();
    assert!(issues[0].message.contains("ends it early"), "{issues:?}");
}
