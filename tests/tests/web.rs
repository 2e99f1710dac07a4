//! The page `executor dev` serves at `/`, in headless Chromium (tests/browser/page.cjs through
//! puppeteer-core), asserting what a person sees: load, an existing execution listed, a new one
//! appearing live with a green `succeeded` badge and a thumbnail, a failed one in red, the
//! detail with the timeline in public statuses, cost lines as a table and the image at its
//! real size, a failed execution's page saying why it has no outputs, the failure piles. scripts/test.sh installs the
//! browser (chromium-headless-shell) and puppeteer-core (under .tools/node).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_tests::Harness;
use serde_json::json;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_lists_updates_live_and_shows_the_timeline() {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| which("chromium-headless-shell"))
        .or_else(|| which("chromium"))
        .expect(
            "no Chromium: run scripts/test.sh (installs chromium-headless-shell) or set CHROMIUM",
        );
    let puppeteer = std::env::var_os("PUPPETEER_CORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".tools/node/node_modules/puppeteer-core"));
    assert!(
        puppeteer.is_dir(),
        "no puppeteer-core at {}: run scripts/test.sh or set PUPPETEER_CORE",
        puppeteer.display()
    );
    let node = which("node").expect("no node: run scripts/test.sh");

    let h = Harness::start().await;
    // The page itself: served with a content security policy that allows no inline script.
    let resp = reqwest::get(format!("{}/", h.sys.url)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(resp.text().await.unwrap().contains("/ui/app.js"));

    let existing = h
        .run(
            "openai/gpt-image-1",
            &json!({"prompt": "listed before the page loads"}),
        )
        .await;
    let id = existing["id"].as_str().unwrap().to_string();
    let (url, key) = (h.sys.url.clone(), h.sys.dev_key.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(node)
            .arg(root().join("tests/browser/page.cjs"))
            .args([&url, &key, &id])
            .env("PUPPETEER_CORE", &puppeteer)
            .env("CHROMIUM", &chromium)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checks"].as_array().unwrap().len(), 7, "{report}");
}
