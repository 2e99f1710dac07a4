//! `executor usage` against a live system with a budget: the table by model with the total
//! and the budget's spent, reserved and left; `--csv`; `--json`; a bad `--group-by` and a bad
//! window are one-line errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::{Client, CreateOptions};
use executor_cli::local::{LocalOptions, LocalSystem};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

fn usage(url: &str, key: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_executor"))
        .arg("usage")
        .args(["--server", url, "--key", key])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_prints_groups_totals_and_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = LocalOptions::dev(dir.path().to_path_buf());
    o.lifecycle.time_scale = 0.02;
    o.lifecycle.budgets = serde_json::from_value(json!([
        {"tenant": "dev", "period": "month", "limit_usd": 5.0}
    ]))
    .unwrap();
    let sys = LocalSystem::start(o).await.unwrap();
    let client = Client::new(&sys.url, &sys.dev_key).unwrap();
    let (status, body) = client
        .create(
            "runway/gen4-turbo",
            &json!({"promptImage": "https://example.com/a.png", "promptText": "usage", "duration": 5}),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert!(status == 201 || status == 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    client
        .wait_final(&id, Duration::from_secs(60), |_| {})
        .await
        .unwrap();
    // Settled once the delivery is no longer pending.
    for _ in 0..400 {
        let v: Value = client.get(&id).await.unwrap();
        if v["delivery"]["state"]
            .as_str()
            .is_some_and(|s| s != "pending")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, out, err) = usage(&sys.url, &sys.dev_key, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("runway/gen4-turbo"), "{out}");
    assert!(out.contains("total"), "{out}");
    assert!(out.contains("0.2500"), "the cost: {out}");
    assert!(
        out.contains("budget month")
            && out.contains("$0.2500 spent + $0.0000 reserved of $5.00, $4.7500 left"),
        "{out}"
    );
    let (code, csv, err) = usage(
        &sys.url,
        &sys.dev_key,
        &["--csv", "--group-by", "error_class"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(csv.starts_with("group,executions,"), "{csv}");
    assert!(
        csv.contains("\nnone,1,1,0,0,0,0,1,0.250000,250000,"),
        "{csv}"
    );
    let (code, json_out, _) = usage(&sys.url, &sys.dev_key, &["--json", "--group-by", "day"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["group_by"], "day");
    assert_eq!(v["total"]["executions"], 1);
    let (code, _, err) = usage(&sys.url, &sys.dev_key, &["--group-by", "week"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("week"), "{err}");
    let (code, _, err) = usage(&sys.url, &sys.dev_key, &["--from", "yesterday"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("RFC 3339") && err.lines().filter(|l| !l.is_empty()).count() == 1,
        "{err}"
    );
    sys.stop().await;
}
