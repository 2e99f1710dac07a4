//! `executor keys create | list | revoke`, on an embedded data directory served by a running
//! system (the API accepts a created key, `list` shows it without the key, a revoked key gets
//! 401) and on a DynamoDB table in moto server (the Lambda's key directory accepts the key, a
//! revoked key is refused once the 60 s cache has not seen it). Invalid tenant names are
//! refused with one line naming the rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use executor_api::hash_api_key;
use executor_cli::local::{LocalOptions, LocalSystem};
use serde_json::Value;
use std::process::Command;
use std::sync::Arc;

fn executor(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_executor"))
        .args(args)
        // The AWS flags are given explicitly; nothing from the environment may redirect them.
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("EXECUTOR_TABLE")
        .env_remove("EXECUTOR_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn one_line_error(code: i32, out: &str, err: &str) {
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert!(out.is_empty(), "nothing on stdout: {out}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

async fn api_status(url: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}/v1/executions"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn options(dir: &std::path::Path) -> LocalOptions {
    let mut o = LocalOptions::dev(dir.to_path_buf());
    o.simulators = None;
    o.allow_missing_credentials = true;
    o.run_workers = false;
    o.reconcile_every_ms = 0;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_revoke_on_the_embedded_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let sys = LocalSystem::start(options(dir.path())).await.unwrap();

    // Create: the key alone on stdout, its id on stderr.
    let (code, out, err) = executor(&["keys", "create", "--tenant", "acme", "--data-dir", d]);
    assert_eq!(code, 0, "{out}\n{err}");
    let key = out.trim().to_string();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        key.starts_with("exk_acme_") && key.len() == "exk_acme_".len() + 32,
        "{key}"
    );
    let hash = hash_api_key(&key);
    let id = &hash[..12];
    assert!(err.contains(id) && !err.contains(&key), "{err}");

    // The running API accepts it at once, as tenant acme (it sees none of dev's executions).
    assert_eq!(api_status(&sys.url, &key).await, 200);
    assert_eq!(api_status(&sys.url, "exk_acme_not-a-key").await, 401);

    // List: the key's id, tenant and creation time, never the key; the dev key is there too.
    let (code, out, err) = executor(&["keys", "list", "--data-dir", d]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("KEY ID") && out.contains(id) && out.contains("acme"),
        "{out}"
    );
    assert!(out.contains("dev"), "{out}");
    assert!(!out.contains(&key) && !out.contains(&sys.dev_key), "{out}");
    let (code, out, _) = executor(&[
        "keys",
        "list",
        "--json",
        "--tenant",
        "acme",
        "--data-dir",
        d,
    ]);
    assert_eq!(code, 0);
    assert!(!out.contains(&key), "{out}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["key_id"], id);
    assert_eq!(listed[0]["key_hash"], hash.as_str());
    assert_eq!(listed[0]["tenant"], "acme");
    let created = listed[0]["created_at_ms"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (now - created).abs() < 60_000,
        "created {created}, now {now}"
    );
    assert!(listed[0]["created_at"].as_str().unwrap().ends_with('Z'));

    // Revoke: the API refuses the key from the next request on; the dev key still works.
    let (code, out, err) = executor(&["keys", "revoke", id, "--data-dir", d]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(id) && out.contains("acme"), "{out}");
    assert_eq!(api_status(&sys.url, &key).await, 401);
    assert_eq!(api_status(&sys.url, &sys.dev_key).await, 200);
    let (_, out, _) = executor(&["keys", "list", "--tenant", "acme", "--data-dir", d]);
    assert_eq!(out.trim(), "no API keys");

    // Revoking again, or a malformed id, is one line.
    let (code, out, err) = executor(&["keys", "revoke", id, "--data-dir", d]);
    one_line_error(code, &out, &err);
    assert!(err.contains("no API key with id"), "{err}");
    let (code, out, err) = executor(&["keys", "revoke", "xyz", "--data-dir", d]);
    one_line_error(code, &out, &err);
    sys.stop().await;
}

#[test]
fn invalid_tenants_and_missing_stores_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for bad in [
        "Acme",
        "acme#1",
        "-acme",
        "",
        "a b",
        "tenant.one",
        &"x".repeat(64),
    ] {
        let tenant = format!("--tenant={bad}");
        let (code, out, err) = executor(&["keys", "create", &tenant, "--data-dir", d]);
        one_line_error(code, &out, &err);
        assert!(
            err.contains("invalid tenant name") && err.contains("^[a-z0-9][a-z0-9_-]{0,62}$"),
            "{err}"
        );
    }
    // Refused before anything was opened: no data directory was made.
    assert!(!dir.path().join("executor.db").exists());

    // A directory without executor data, an unknown backend, AWS without a table.
    let (code, out, err) = executor(&["keys", "list", "--data-dir", d]);
    one_line_error(code, &out, &err);
    assert!(err.contains("no executor data"), "{err}");
    let (code, out, err) = executor(&["keys", "list", "--backend", "gcp"]);
    one_line_error(code, &out, &err);
    let (code, out, err) = executor(&["keys", "list", "--backend", "aws"]);
    one_line_error(code, &out, &err);
    assert!(err.contains("--table"), "{err}");

    // `executor dev` refuses an empty key before starting anything.
    let (code, out, err) = executor(&["dev", "--backend", "aws", "--api-key", " "]);
    one_line_error(code, &out, &err);
    assert!(err.contains("--api-key"), "{err}");
}

fn moto() -> String {
    let e = std::env::var("EXECUTOR_TEST_AWS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".into());
    let hostport = e.split("://").nth(1).unwrap_or(&e).trim_end_matches('/');
    assert!(
        std::net::TcpStream::connect(hostport).is_ok(),
        "moto server ({e}) must be running: run scripts/services.sh"
    );
    e
}

fn bearer(key: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
    );
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_revoke_on_a_dynamodb_table() {
    let endpoint = moto();
    let table = format!(
        "executor-keys-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let cfg = executor_aws::AwsConfig {
        table: table.clone(),
        bucket: String::new(),
        queues: Default::default(),
        outcome_queue_url: String::new(),
        limiter: executor_aws::LimiterChoice::DynamoDb,
        secret_arn: None,
        endpoint_url: Some(endpoint.clone()),
        region: "us-east-1".into(),
        s3_path_style: true,
    };
    let client = aws_sdk_dynamodb::Client::new(&cfg.sdk_config().await);
    let store = Arc::new(executor_aws::DynamoGuardStore::new(
        client,
        table.clone(),
        Arc::new(executor_lifecycle::SystemClock),
    ));
    store.create_table_if_missing().await.unwrap();
    let aws = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--backend",
            "aws",
            "--table",
            &table,
            "--endpoint",
            &endpoint,
            "--region",
            "us-east-1",
        ]);
        executor(&all)
    };

    let (code, out, err) = aws(&["keys", "create", "--tenant", "acme"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let key = out.trim().to_string();
    assert!(key.starts_with("exk_acme_"), "{key}");
    let hash = hash_api_key(&key);
    let id = &hash[..12];
    assert_eq!(
        store.tenant_for_key_hash(&hash).await.unwrap().as_deref(),
        Some("acme")
    );
    // The directory the functions authorize with accepts it.
    let warm = executor_lambda::app::DynamoTenants::new(store.clone());
    assert_eq!(
        executor_api::auth::tenant(&bearer(&key), &warm)
            .await
            .unwrap(),
        "acme"
    );

    // A second tenant's key, to see list and revoke pick the right one.
    let (code, other, err) = aws(&["keys", "create", "--tenant", "globex"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = aws(&["keys", "list", "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains(&key) && !out.contains(other.trim()), "{out}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{out}");
    let mine = listed.iter().find(|k| k["key_id"] == id).unwrap();
    assert_eq!(mine["tenant"], "acme");
    assert_eq!(mine["key_hash"], hash.as_str());
    assert!(mine["created_at_ms"].as_i64().unwrap() > 0);
    let (code, out, _) = aws(&["keys", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(id) && out.contains("acme") && out.contains("globex"),
        "{out}"
    );

    // The reserved index partition never shows up in a tenant's execution listing.
    let q = executor_lifecycle::ListQuery {
        tenant: Some("acme".into()),
        limit: 50,
        ..Default::default()
    };
    assert!(
        executor_lifecycle::GuardStore::list(store.as_ref(), &q)
            .await
            .unwrap()
            .is_empty()
    );

    // Revoke: gone from the table; a function that has not cached it refuses it (401), a warm
    // one that has keeps it for at most the cache's 60 s.
    let (code, out, err) = aws(&["keys", "revoke", id]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("within 60 s"), "{out}");
    assert_eq!(store.tenant_for_key_hash(&hash).await.unwrap(), None);
    let cold = executor_lambda::app::DynamoTenants::new(store.clone());
    let refused = executor_api::auth::tenant(&bearer(&key), &cold)
        .await
        .unwrap_err();
    assert_eq!(refused.status, 401);
    assert_eq!(
        executor_api::auth::tenant(&bearer(&key), &warm)
            .await
            .unwrap(),
        "acme",
        "cached for up to KEY_CACHE_TTL"
    );
    assert_eq!(
        executor_lambda::app::KEY_CACHE_TTL,
        std::time::Duration::from_secs(60)
    );
    let (_, out, _) = aws(&["keys", "list", "--json"]);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(listed[0]["tenant"], "globex");

    // Revoking it again, and a table that does not exist, are one line.
    let (code, out, err) = aws(&["keys", "revoke", id]);
    one_line_error(code, &out, &err);
    let (code, out, err) = executor(&[
        "keys",
        "list",
        "--backend",
        "aws",
        "--table",
        "executor-no-such-table",
        "--endpoint",
        &endpoint,
    ]);
    one_line_error(code, &out, &err);
    assert!(err.contains("executor-no-such-table"), "{err}");
}

/// `executor dev --backend aws --api-key K` stores K for the dev tenant (it used to print a
/// random key and ignore the flag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_on_aws_uses_the_given_api_key() {
    use std::io::BufRead;
    let endpoint = moto();
    let redis = std::env::var("EXECUTOR_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let tag = ulid::Ulid::new().to_string().to_lowercase();
    let prefix = format!("executor-keys-dev-{}", &tag[16..]);
    let key = format!("exk_dev_given_{tag}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_executor"))
        .args(["dev", "--backend", "aws", "--bind", "127.0.0.1:0"])
        .args([
            "--endpoint",
            &endpoint,
            "--redis",
            &redis,
            "--aws-prefix",
            &prefix,
        ])
        .args(["--api-key", &key])
        .env("EXECUTOR_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut url, mut printed) = (None, None);
    while url.is_none() || printed.is_none() {
        let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("executor dev --backend aws did not start (url {url:?}, key {printed:?})");
        };
        if let Some(u) = line.split(" listening on ").nth(1) {
            url = Some(u.trim().to_string());
        }
        if let Some(k) = line.strip_prefix("dev API key (tenant 'dev'): ") {
            printed = Some(k.trim().to_string());
        }
    }
    let url = url.unwrap();
    let ok = api_status(&url, &key).await;
    let wrong = api_status(&url, "exk_dev_not-the-key").await;
    let (code, out, err) = executor(&[
        "keys",
        "list",
        "--backend",
        "aws",
        "--table",
        &prefix,
        "--endpoint",
        &endpoint,
    ]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(printed.as_deref(), Some(key.as_str()));
    assert_eq!(ok, 200, "the given key is the dev tenant's");
    assert_eq!(wrong, 401);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&hash_api_key(&key)[..12]) && out.contains("dev") && !out.contains(&key),
        "{out}"
    );
}
