//! `file-handler` `rehost`: a provider's output (whose URL expires at the real provider) is
//! copied into this deployment's blob store during the poll that sees it succeed, the
//! normalized output points at the stable copy served by the API without a key, and the raw
//! provider response keeps the original URL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_tests::Harness;
use serde_json::json;
use std::path::Path;

/// The repository's bundles, with the Runway model re-hosting its outputs (its model file
/// replaces the provider's poll steps; the provider's auth headers still apply).
fn bundles_with_rehost(dir: &Path) {
    executor_tests::copy_bundles(dir);
    let file = dir.join("runway-gen4-turbo.yaml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("\nsteps:"),
        "the model file has steps of its own now"
    );
    text.push_str(
        r#"steps:
  poll:
    - kind: http-request
      id: task
      method: GET
      url: "{{ base_url }}/v1/tasks/{{ job.id }}"
    - kind: conditional
      if: "steps.task.body.status == 'SUCCEEDED'"
      then:
        - kind: for-each
          id: copies
          items: steps.task.body.output
          as: output_url
          max_items: 4
          collect: copy
          steps:
            - kind: file-handler
              id: copy
              action: rehost
              url: "{{ output_url }}"
              max_bytes: 104857600
              accept: ["video/", "image/"]
"#,
    );
    std::fs::write(file, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_rehosted_at_stable_urls() {
    let bundles = tempfile::tempdir().unwrap();
    bundles_with_rehost(bundles.path());
    let dir = bundles.path().to_path_buf();
    let h = Harness::start_with(move |o| o.bundles_dir = dir).await;
    let v = h
        .run(
            "runway/gen4-turbo",
            &json!({"promptImage": "https://example.com/f.png", "promptText": "waves"}),
        )
        .await;
    assert_eq!(v["outcome"], "succeeded", "{v:#}");
    let url = v["outputs"][0]["url"].as_str().unwrap();
    let prefix = format!("{}/v1/media/{}/", h.sys.url, v["id"].as_str().unwrap());
    assert!(
        url.starts_with(&prefix),
        "{url} is not a stable URL under {prefix}"
    );
    assert!(url.ends_with(".mp4"), "{url}");

    // The raw response keeps the provider's URL; both serve the same bytes, ours without a key.
    let raw = reqwest::Client::new()
        .get(format!(
            "{}/v1/executions/{}/raw",
            h.sys.url,
            v["id"].as_str().unwrap()
        ))
        .bearer_auth(&h.sys.dev_key)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let original = raw["raw"]["output"][0].as_str().unwrap().to_string();
    assert_ne!(original, url);
    let ours = reqwest::get(url).await.unwrap();
    assert_eq!(ours.status(), 200);
    assert_eq!(ours.headers()["content-type"], "video/mp4");
    let ours = ours.bytes().await.unwrap();
    let theirs = reqwest::get(&original)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    // A real-size video (5 s at 1280x720, ≈ 3.75 MB; shared/simulators/src/files.rs), copied
    // whole: before, the simulators served a 32-byte stub.
    assert!(ours.len() > 3_000_000, "{} bytes", ours.len());
    assert_eq!(&ours[4..8], b"ftyp");
    assert_eq!(ours, theirs);

    // Names that are not the store's answer 404 as problem+json, and reach no other blob.
    for bad in [
        format!("{prefix}{}.mp4", "0".repeat(64)),
        format!("{prefix}..%2F..%2Fexecutor.db"),
        format!("{}/v1/media/..%2Fblobs/x.mp4", h.sys.url),
    ] {
        let r = reqwest::get(&bad).await.unwrap();
        assert_eq!(r.status(), 404, "{bad}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{bad}"
        );
    }
    h.sys.stop().await;
}
