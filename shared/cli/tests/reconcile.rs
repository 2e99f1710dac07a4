//! `executor reconcile` on the embedded backend: an accepted execution whose message was lost
//! is found overdue, its message re-sent, and a system started on the same data directory
//! then finishes it. The command reports what it did, as text and as JSON; a data directory
//! without executor data is a one-line error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::{Client, CreateOptions};
use executor_cli::local::{LocalOptions, LocalSystem};
use executor_lifecycle::{Queue, QueueName};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

fn options(dir: &std::path::Path, workers: bool) -> LocalOptions {
    let mut o = LocalOptions::dev(dir.to_path_buf());
    o.lifecycle.time_scale = 0.02;
    o.run_workers = workers;
    o.reconcile_every_ms = 0; // only the command reconciles here
    o
}

fn reconcile(dir: &std::path::Path, config: &std::path::Path, json: bool) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_executor"));
    cmd.arg("reconcile")
        .arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(config);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_message_is_redriven_and_the_execution_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("executor.toml");
    std::fs::write(&config, "[lifecycle]\nreconcile_grace_ms = 0\n").unwrap();

    // Accept an execution with no consumers running, then lose its message.
    let sys = LocalSystem::start(options(dir.path(), false))
        .await
        .unwrap();
    let client = Client::new(&sys.url, &sys.dev_key).unwrap();
    let (status, body) = client
        .create(
            "runway/gen4-turbo",
            &json!({"promptImage": "https://example.com/a.png", "promptText": "reconcile me"}),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let got = sys
        .store
        .receive(QueueName::Submit, 10, 60_000)
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "the accepted execution's submit message");
    sys.store
        .ack(QueueName::Submit, &got[0].receipt)
        .await
        .unwrap();
    assert_eq!(sys.store.queue_depth(QueueName::Submit).await.unwrap(), 0);

    // The command, beside the running system: it finds the execution and re-sends its message.
    let (code, out, err) = reconcile(dir.path(), &config, true);
    assert_eq!(code, 0, "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    // The accept's outbox (its submit message) is settled only by that message's handling, so
    // the pass applies the pending outbox, which sends the message again.
    assert_eq!(report["outboxes_applied"], 1, "{report}");
    assert_eq!(report["redriven"], 0, "{report}");
    assert_eq!(report["execution_ids"], json!([id]), "{report}");
    assert_eq!(sys.store.queue_depth(QueueName::Submit).await.unwrap(), 1);
    let (code, out, _) = reconcile(dir.path(), &config, false);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(
            "examined 1 overdue execution(s): 1 pending outbox(es) applied, 0 message(s) re-sent"
        ),
        "{out}"
    );
    assert!(out.contains(&id), "{out}");
    sys.stop().await;

    // A system with consumers on the same directory finishes it from the re-sent message.
    let sys = LocalSystem::start(options(dir.path(), true)).await.unwrap();
    let client = Client::new(&sys.url, &sys.dev_key).unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let v = client.get(&id).await.unwrap();
        if v["status"] == "succeeded" && executor_cli::client::is_settled(&v) {
            assert!(!v["outputs"].as_array().unwrap().is_empty(), "{v}");
            break;
        }
        assert!(Instant::now() < until, "{id} did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sys.stop().await;
}

#[test]
fn a_directory_without_executor_data_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("none.toml");
    std::fs::write(&config, "").unwrap();
    let (code, out, err) = reconcile(&dir.path().join("nothing-here"), &config, false);
    assert_ne!(code, 0, "{out}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("no executor data in"), "{err}");
    assert!(
        !dir.path().join("nothing-here").exists(),
        "nothing is created"
    );
}
