//! Every example in `docs/api.md` and the README runs against a live local system (the same
//! process `executor dev` runs: embedded backend, real HTTP, simulators): shell blocks with
//! bash (curl, jq, openssl), Python blocks with python3, TypeScript blocks type-checked with
//! `tsc --strict` and run with tsx. A block is an example when its info string says
//! `example` (`example-prelude` blocks are prepended to the examples of their language). A doc
//! that stops working fails here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use executor_tests::Harness;
use parking_lot::Mutex;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
struct Block {
    file: String,
    line: usize,
    lang: String,
    kind: String,
    code: String,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fenced blocks whose info string is `<lang> example...`.
fn blocks(file: &str) -> Vec<Block> {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut current {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    let mut words = info.split_whitespace();
                    let lang = words.next().unwrap_or("").to_string();
                    let kind = words.next().unwrap_or("").to_string();
                    current = Some(Block {
                        file: file.into(),
                        line: i + 1,
                        lang,
                        kind,
                        code: String::new(),
                    });
                }
            }
            Some(b) => {
                if line.starts_with("```") {
                    let b = current.take().unwrap();
                    if b.kind.starts_with("example") {
                        out.push(b);
                    }
                } else {
                    b.code.push_str(line);
                    b.code.push('\n');
                }
            }
        }
    }
    out
}

fn tool(env: &str, local: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let p = root().join(".tools/node/node_modules/.bin").join(local);
    if p.exists() {
        return p;
    }
    which(name).unwrap_or_else(|| {
        panic!("{name} not found: run scripts/test.sh (installs it under .tools/node) or set {env}")
    })
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.exists())
}

struct Run {
    ok: bool,
    out: String,
}

fn run(cmd: &mut Command, dir: &Path, env: &[(&str, String)]) -> Run {
    cmd.current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().unwrap();
    Run {
        ok: output.status.success(),
        out: format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

type Captured = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn capture(State(seen): State<Captured>, headers: HeaderMap, body: Bytes) -> &'static str {
    seen.lock().push((headers, body));
    "ok"
}

/// Runs the examples of `files` against a live system.
async fn run_examples(files: &[&str]) -> usize {
    let all: Vec<Block> = files.iter().flat_map(|f| blocks(f)).collect();
    // The budgets docs/api.md shows ("Budgets and usage"): a month's $1,000 for the tenant,
    // and $0.001 a day for one model, which its examples run into.
    let h = Harness::start_with(|o| {
        o.lifecycle.budgets = serde_json::from_value(json!([
            {"tenant": "dev", "period": "month", "limit_usd": 1000.0},
            {"tenant": "dev", "period": "day", "limit_usd": 0.001,
             "model": "black-forest-labs/flux-schnell"},
        ]))
        .unwrap();
    })
    .await;
    let work = tempfile::tempdir().unwrap();
    let secret = executor_cli::local::LocalOptions::dev(work.path().into()).webhook_secret;
    let env = vec![
        ("EXECUTOR_URL", h.sys.url.clone()),
        ("EXECUTOR_KEY", h.sys.dev_key.clone()),
        ("EXECUTOR_WEBHOOK_SECRET", secret),
    ];
    // The preludes of a language in the same file.
    let prelude = |lang: &str, file: &str| -> String {
        all.iter()
            .filter(|b| b.lang == lang && b.file == file && b.kind == "example-prelude")
            .map(|b| b.code.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };

    // TypeScript: type-check every example (strict) before running any.
    let ts: Vec<&Block> = all
        .iter()
        .filter(|b| b.lang == "typescript" && b.kind == "example")
        .collect();
    let mut ts_files = Vec::new();
    for (i, b) in ts.iter().enumerate() {
        let path = work.path().join(format!("example_{i}.mts"));
        std::fs::write(
            &path,
            format!(
                "{}\n{}\nexport {{}};\n",
                prelude("typescript", &b.file),
                b.code
            ),
        )
        .unwrap();
        ts_files.push(path);
    }
    if !ts_files.is_empty() {
        let types = root().join(".tools/node/node_modules/@types");
        let mut tsc = Command::new(tool("EXECUTOR_TSC", "tsc", "tsc"));
        tsc.args([
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--skipLibCheck",
            "--typeRoots",
        ])
        .arg(&types)
        .args(["--types", "node"])
        .args(&ts_files);
        let r = run(&mut tsc, work.path(), &env);
        assert!(r.ok, "TypeScript examples do not type-check:\n{}", r.out);
    }

    let mut ran = 0;
    let mut ts_index = 0;
    for b in &all {
        if b.kind == "example-prelude" {
            continue;
        }
        let dir = tempfile::tempdir_in(work.path()).unwrap();
        let r = match (b.lang.as_str(), b.kind.as_str()) {
            ("sh", "example") => {
                let path = dir.path().join("example.sh");
                std::fs::write(&path, &b.code).unwrap();
                run(
                    Command::new("bash").args(["-euo", "pipefail"]).arg(&path),
                    dir.path(),
                    &env,
                )
            }
            ("sh", "example-webhook") => webhook_example(&h, b, dir.path(), &env).await,
            ("python", "example") => {
                let path = dir.path().join("example.py");
                std::fs::write(&path, format!("{}\n{}", prelude("python", &b.file), b.code))
                    .unwrap();
                run(Command::new("python3").arg(&path), dir.path(), &env)
            }
            ("typescript", "example") => {
                let path = ts_files[ts_index].clone();
                ts_index += 1;
                run(
                    Command::new(tool("EXECUTOR_TSX", "tsx", "tsx")).arg(&path),
                    dir.path(),
                    &env,
                )
            }
            (lang, kind) => panic!(
                "{}:{}: unknown example kind `{lang} {kind}`",
                b.file, b.line
            ),
        };
        assert!(
            r.ok,
            "{}:{} ({} example) failed:\n{}\n--- code\n{}",
            b.file, b.line, b.lang, r.out, b.code
        );
        ran += 1;
    }
    h.sys.stop().await;
    ran
}

/// The shell verification example checks a real delivery: a receiver captures one, the
/// example must accept it, and must reject the same delivery with its body changed.
async fn webhook_example(h: &Harness, b: &Block, dir: &Path, env: &[(&str, String)]) -> Run {
    let seen: Captured = Arc::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(capture))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let (status, created) = h
        .client
        .create(
            "fal-ai/flux-dev",
            &json!({"prompt": "a delivery to verify"}),
            &executor_cli::client::CreateOptions {
                webhook_url: Some(format!("http://{addr}/hook")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(status < 300, "{created}");
    let mut delivery = None;
    for _ in 0..600 {
        if let Some(d) = seen.lock().first().cloned() {
            delivery = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (headers, body) = delivery.expect("no webhook delivery arrived");
    let header = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_string();
    let mut env: Vec<(&str, String)> = env.to_vec();
    env.push(("WEBHOOK_ID", header("webhook-id")));
    env.push(("WEBHOOK_TIMESTAMP", header("webhook-timestamp")));
    env.push(("WEBHOOK_SIGNATURE", header("webhook-signature")));
    let path = dir.join("verify.sh");
    std::fs::write(&path, &b.code).unwrap();
    std::fs::write(dir.join("delivery.json"), &body).unwrap();
    let good = run(
        Command::new("bash").args(["-euo", "pipefail"]).arg(&path),
        dir,
        &env,
    );
    if !good.ok || !good.out.contains("signature valid") {
        return Run {
            ok: false,
            out: format!("a genuine delivery was not accepted:\n{}", good.out),
        };
    }
    let mut tampered = body.to_vec();
    tampered.extend_from_slice(b" ");
    std::fs::write(dir.join("delivery.json"), &tampered).unwrap();
    let bad = run(
        Command::new("bash").args(["-euo", "pipefail"]).arg(&path),
        dir,
        &env,
    );
    if bad.ok {
        return Run {
            ok: false,
            out: format!("a tampered delivery was accepted:\n{}", bad.out),
        };
    }
    good
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_example_runs() {
    let ran = run_examples(&["docs/api.md", "README.md"]).await;
    // 7 flows in docs/api.md x 3 languages, plus the README's three.
    assert!(ran >= 24, "only {ran} examples ran");
}
