//! Provider credentials never leak: a system configured with distinctive credentials runs
//! executions of every bundle through success, provider failures, refusals, retries, a
//! cancel and a customer webhook delivery, with every log line captured at DEBUG; then every
//! log line, every API answer (executions, timelines, lists, piles, models), every delivered
//! webhook body, the SQLite files and every stored blob (decoded) are scanned for the
//! credentials. Their use is real: the simulators refuse a request without them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::CreateOptions;
use executor_tests::Harness;
use executor_tests::customer::endpoint;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

const SECRETS: [(&str, &str); 25] = [
    ("OPENAI_API_KEY", "sk-proj-SCANopenaiQ7f3a9c1d5e"),
    ("RUNWAYML_API_SECRET", "key_SCANrunway8b2e6f0a4c"),
    ("REPLICATE_API_TOKEN", "r8_SCANreplicate3d9a7e1b"),
    ("FAL_KEY", "SCANfal-5c1e:9f3b7a2d6e8c"),
    ("STABILITY_API_KEY", "sk-SCANstability4e7b1c9d2a"),
    ("ELEVENLABS_API_KEY", "sk_SCANelevenlabs6a3f8e0b5d"),
    ("LUMAAI_API_KEY", "luma-SCANluma2c8d4f6a1e3b"),
    ("MINIMAX_API_KEY", "eyJSCANminimax9e5a3c7b1d"),
    ("ANTHROPIC_API_KEY", "sk-ant-SCANanthropic4b8e2d"),
    ("GEMINI_API_KEY", "AIzaSCANgemini7c3e9a1f5b"),
    ("BFL_API_KEY", "bfl-SCANbfl2d6f8a0c4e7b"),
    ("IDEOGRAM_API_KEY", "ide-SCANideogram5e1a9c3d"),
    ("RECRAFT_API_TOKEN", "rec-SCANrecraft8a2c6e4f0b"),
    // The Kling simulator verifies the JWT against its configured key pair.
    ("KLING_ACCESS_KEY", "sim-kling-access-key"),
    ("KLING_SECRET_KEY", "sim-kling-secret-key"),
    ("ASSEMBLYAI_API_KEY", "aai-SCANassembly3f7b1d9e5c"),
    ("ASSEMBLYAI_WEBHOOK_SECRET", "whs-SCANassemblyhook8d2f6b"),
    ("DEEPGRAM_API_KEY", "dg-SCANdeepgram6c0e4a8b2d"),
    ("TOGETHER_API_KEY", "tgp-SCANtogether1e5c9a3f7b"),
    ("FIREWORKS_API_KEY", "fw_SCANfireworks4a8e2c6d0f"),
    ("GROQ_API_KEY", "gsk_SCANgroq9d3f7b1e5a"),
    ("DEEPINFRA_API_KEY", "di-SCANdeepinfra2b6d0f4a8c"),
    ("MISTRAL_API_KEY", "mis-SCANmistral7e1c5a9d3b"),
    ("HF_TOKEN", "hf_SCANhuggingface0c4e8a2f6d"),
    ("MESHY_API_KEY", "msy_SCANmeshy5f9b3d7a1e"),
];

#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every credential or a recognizable part of one (its distinctive middle).
fn leaks(haystack: &[u8]) -> Vec<&'static str> {
    let text = String::from_utf8_lossy(haystack);
    SECRETS
        .iter()
        .filter(|(_, v)| text.contains(v) || text.contains(&v[4..v.len() - 2]))
        .map(|(k, _)| *k)
        .collect()
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_appear_in_logs_answers_or_storage() {
    let logs = Captured(Arc::new(Mutex::new(Vec::new())));
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_path_buf();
    let h = Harness::start_with(|o| {
        o.data_dir = dir.clone();
        o.secrets = Some(
            SECRETS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        );
    })
    .await;
    let secret = executor_cli::local::LocalOptions::dev(".".into()).webhook_secret;
    let (hooks, hook_url) = endpoint(&secret, 1).await;

    let models = h.client.models().await.unwrap();
    let mut ids = Vec::new();
    // One model per provider: the credentials are the provider's (all of a provider's models
    // send the same auth headers), and ~450 executions at once would only measure the queue.
    let mut seen = std::collections::BTreeSet::new();
    for m in models["data"].as_array().unwrap() {
        let model = m["id"].as_str().unwrap();
        let reference = executor_cli::demo::FAULT_SUITE.contains(&model);
        if !seen.insert(m["provider"].as_str().unwrap_or("").to_string()) && !reference {
            continue;
        }
        for (i, prompt) in [
            "a cat",
            "sim:fail",
            "sim:content_policy",
            "sim:invalid",
            "sim:rate_limit=1",
            "sim:server_error=1",
            "slow sim:duration=60000",
        ]
        .iter()
        .enumerate()
        {
            // The fault prompts on the original eight providers' models: every simulator is
            // one host here, and the per-host circuit breaker opened by one provider's 5xx
            // holds the others (a test-world artefact written down in docs/chaos.md).
            if i > 0 && !executor_cli::demo::FAULT_SUITE.contains(&model) {
                continue;
            }
            if prompt.starts_with("slow") && m["shape"] == "immediate" {
                continue; // nothing to cancel: it answers in the request
            }
            let opts = CreateOptions {
                webhook_url: (i == 0).then(|| hook_url.clone()),
                ..Default::default()
            };
            let (status, body) = h
                .client
                .create(model, &Harness::input(&m["input_schema"], prompt), &opts)
                .await
                .unwrap();
            assert!(status < 300, "{status} {body}");
            let id = body["id"].as_str().unwrap().to_string();
            if prompt.starts_with("slow") {
                h.client.cancel(&id).await.unwrap();
            }
            ids.push((id, model.to_string()));
        }
    }
    // A refused create (unknown model) and a forged callback produce errors too.
    let (status, body) = h
        .client
        .create("nope/none", &serde_json::json!({}), &Default::default())
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");

    let mut answers = Vec::new();
    let mut outcomes = std::collections::BTreeMap::new();
    for (id, model) in &ids {
        let v = match h
            .client
            .wait_final(id, std::time::Duration::from_secs(30), |_| {})
            .await
        {
            Ok(v) => v,
            Err(e) => panic!("{model}: {e}: {}", h.client.get(id).await.unwrap()),
        };
        *outcomes
            .entry(v["outcome"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
        answers.push(v.to_string());
        answers.push(h.client.events(id).await.unwrap().to_string());
    }
    answers.push(
        reqwest::Client::new()
            .get(format!("{}/v1/executions?limit=100", h.sys.url))
            .bearer_auth(&h.sys.dev_key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    answers.push(
        h.client
            .failures("1h", None, None)
            .await
            .unwrap()
            .to_string(),
    );
    answers.push(models.to_string());
    for k in ["succeeded", "failed", "canceled"] {
        assert!(outcomes.contains_key(k), "the run covers {k}: {outcomes:?}");
    }
    assert!(!hooks.accepted.lock().is_empty(), "a webhook was delivered");

    // The credentials were used: the simulators saw them (a request without one is refused).
    // Every provider with a model in the catalogue (a simulator may exist before its bundle).
    let stats = h.sys.simulators.as_ref().unwrap().stats();
    let providers: std::collections::BTreeSet<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["provider"].as_str())
        .collect();
    assert!(!providers.is_empty());
    for p in providers {
        assert!(stats.provider(p).creates > 0, "{p} was called");
    }

    let mut found: Vec<String> = Vec::new();
    for a in &answers {
        for k in leaks(a.as_bytes()) {
            found.push(format!("API answer: {k}"));
        }
    }
    for b in hooks.accepted.lock().iter() {
        for k in leaks(b.to_string().as_bytes()) {
            found.push(format!("customer webhook: {k}"));
        }
    }
    // The guard items keep small requests, results and the transition history packed
    // (zstd): scan them decoded, each field as the engine reads it.
    let mut guards = 0;
    for (id, _) in &ids {
        let g = h.sys.engine.ports().guards.get(id).await.unwrap().unwrap();
        guards += 1;
        for k in leaks(format!("{g:?}").as_bytes()) {
            found.push(format!("guard {id} (decoded): {k}"));
        }
        for r in h.sys.engine.transitions(id).await.unwrap() {
            for k in leaks(serde_json::to_string(&r).unwrap().as_bytes()) {
                found.push(format!("transition of {id}: {k}"));
            }
        }
    }
    assert_eq!(guards, ids.len());
    h.sys.stop().await;
    let log = logs.0.lock().unwrap().clone();
    assert!(
        log.len() > 10_000,
        "debug logs were captured ({} bytes)",
        log.len()
    );
    for k in leaks(&log) {
        found.push(format!("logs: {k}"));
    }
    let mut all = Vec::new();
    files(data.path(), &mut all);
    let mut blobs = 0;
    for f in &all {
        let bytes = std::fs::read(f).unwrap();
        for k in leaks(&bytes) {
            found.push(format!("{}: {k}", f.display()));
        }
        if f.components().any(|c| c.as_os_str() == "blobs")
            && let Ok(v) = executor_lifecycle::blobs::decode::<serde_json::Value>(&bytes)
        {
            blobs += 1;
            for k in leaks(v.to_string().as_bytes()) {
                found.push(format!("{} (decoded): {k}", f.display()));
            }
        }
    }
    assert!(blobs > 10, "blobs decoded and scanned: {blobs}");
    assert!(found.is_empty(), "credentials leaked: {found:#?}");
    println!(
        "scanned {} log bytes, {} API answers, {} files ({blobs} blobs decoded), {guards} guards decoded: no credential",
        log.len(),
        answers.len(),
        all.len()
    );
}
