//! `executor dev --no-simulators` with the key of one provider only: it starts, lists every
//! model, the others as unavailable with the variable they lack, and an execution of an
//! unavailable model fails with `pipeline_configuration` naming it, without a provider call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::{Client, CreateOptions};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every credential a provider file names (so none leaks in from the test's environment).
fn credentials() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bundles/providers");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let v: Value = serde_yaml_ng::from_str(&text).unwrap();
        let mut push = |c: &Value| {
            for s in c.as_array().into_iter().flatten().filter_map(Value::as_str) {
                out.push(s.to_string());
            }
        };
        push(&v["credentials"]);
        for h in v["hosts"].as_object().into_iter().flat_map(|m| m.values()) {
            push(&h["credentials"]);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_providers_with_keys_are_available() {
    let bin = env!("CARGO_BIN_EXE_executor");
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args([
        "dev",
        "--no-simulators",
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data.path())
    .env(
        "EXECUTOR_BUNDLES_DIR",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../bundles"),
    );
    for c in credentials() {
        cmd.env_remove(c);
    }
    // fal's key only (pointed at a closed port: nothing here calls fal).
    cmd.env("FAL_KEY", "k")
        .env("EXECUTOR_FAL_BASE_URL", "http://127.0.0.1:9");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let key = loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
            let _ = child.kill();
            panic!("executor dev did not start with one provider's key");
        }
        if line.contains("dev API key") {
            break line.trim().rsplit(' ').next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in reader.lines() {});
    let client = Client::new(&format!("http://127.0.0.1:{port}"), &key).unwrap();
    let models = client.models().await.unwrap();
    let all = models["data"].as_array().unwrap();
    let by_id = |id: &str| all.iter().find(|m| m["id"] == id).unwrap().clone();
    assert_eq!(by_id("fal-ai/flux-dev")["available"], true);
    let openai = by_id("openai/gpt-image-1");
    assert_eq!(openai["available"], false, "{openai}");
    assert_eq!(openai["missing_credentials"], json!(["OPENAI_API_KEY"]));
    assert!(openai["pricing"]["unit"].is_string(), "{openai}");
    assert_eq!(openai["modality"], "image");
    for m in all {
        assert_eq!(
            m["available"] == true,
            m["provider"] == "fal",
            "only fal has its key: {m}"
        );
    }

    // Filters: what this deployment can run, and one modality.
    let get = |q: &'static str| {
        let key = key.clone();
        async move {
            let r = reqwest::Client::new()
                .get(format!("http://127.0.0.1:{port}/v1/models?{q}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, runnable) = get("available=true").await;
    assert_eq!(s, 200);
    let runnable: Vec<&str> = runnable["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["provider"].as_str().unwrap())
        .collect();
    assert!(
        !runnable.is_empty() && runnable.iter().all(|p| *p == "fal"),
        "{runnable:?}"
    );
    let (_, video) = get("modality=video").await;
    assert!(
        video["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["modality"] == "video")
    );
    assert!(!video["data"].as_array().unwrap().is_empty());
    let (s, bad) = get("available=maybe").await;
    assert_eq!(s, 400, "{bad}");
    assert_eq!(bad["field"], "/query/available");

    let (status, created) = client
        .create(
            "openai/gpt-image-1",
            &json!({"prompt": "a cat"}),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert!(
        status == 201 || status == 202 || status == 200,
        "{status} {created}"
    );
    let id = created["id"].as_str().unwrap().to_string();
    let until = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let v = client.get(&id).await.unwrap();
        let terminal = v["error"].is_object()
            && ["failed", "finalized", "finalized_degraded"]
                .contains(&v["status"].as_str().unwrap_or(""));
        if terminal {
            break v;
        }
        assert!(Instant::now() < until, "not terminal: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["error"]["class"], "pipeline_configuration", "{done}");
    assert!(
        done["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY"),
        "{done}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
