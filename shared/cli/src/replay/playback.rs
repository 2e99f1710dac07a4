//! Playing a fixture back: a loopback server stands in for the provider (the bundle's base
//! URL points at it) and answers each request with the next recorded interaction of the same
//! method and path (the last one again once they are used up: a poll asked more often than
//! recorded sees the final state); recorded callbacks are sent to the execution's webhook
//! route after the interaction they followed, signed again with the replay's own keys
//! (Standard Webhooks and fal's Ed25519 signatures carry timestamps). The embedded system
//! runs the execution from the API to the end; its outcome (status, error class, outputs,
//! cost) is compared with the fixture's expectation and a difference printed as a diff.

use super::fixture::{Expect, Fixture, Interaction, diff, project, read_fixture};
use super::{Keys, respond, serve, system_options};
use crate::client::{Client, CreateOptions};
use crate::local::LocalSystem;
use anyhow::Result;
use axum::extract::{OriginalUri, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use executor_bundles::Bundle;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

struct ReplayState {
    interactions: Vec<Interaction>,
    served: Mutex<Vec<bool>>,
    answered: Mutex<usize>,
    unexpected: Mutex<Vec<String>>,
    notify: tokio::sync::Notify,
}

async fn replay_handler(
    State(st): State<Arc<ReplayState>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let path = uri.path().strip_prefix("/provider").unwrap_or(uri.path());
    let idx = {
        let mut served = st.served.lock();
        let matching: Vec<usize> = st
            .interactions
            .iter()
            .enumerate()
            .filter(|(_, i)| i.request.method.eq_ignore_ascii_case(method.as_str()))
            .filter(|(_, i)| i.request.path == path)
            .map(|(n, _)| n)
            .collect();
        let next = matching.iter().copied().find(|n| !served[*n]);
        match next.or(matching.last().copied()) {
            Some(n) => {
                if !served[n] {
                    served[n] = true;
                    *st.answered.lock() += 1;
                }
                Some(n)
            }
            None => None,
        }
    };
    st.notify.notify_waiters();
    let Some(n) = idx else {
        let what = format!("{method} {path}");
        st.unexpected.lock().push(what.clone());
        return (
            StatusCode::NOT_IMPLEMENTED,
            axum::Json(json!({"replay": format!("no recorded interaction for {what}")})),
        )
            .into_response();
    };
    respond(&st.interactions[n].response)
}

/// The result of one fixture.
#[derive(Debug, Clone)]
pub struct FixtureReport {
    /// The fixture file.
    pub file: PathBuf,
    /// Its name.
    pub name: String,
    /// Passed.
    pub passed: bool,
    /// The diff (expected vs actual) or what went wrong.
    pub detail: String,
    /// The actual outcome.
    pub actual: Option<Expect>,
}

/// Plays one fixture back against the bundle in `bundles_dir`.
pub async fn run_fixture(
    file: &Path,
    bundles: &BTreeMap<String, (PathBuf, Bundle)>,
    bundles_dir: &Path,
) -> FixtureReport {
    let fail = |name: String, detail: String| FixtureReport {
        file: file.to_path_buf(),
        name,
        passed: false,
        detail,
        actual: None,
    };
    let fixture = match read_fixture(file) {
        Ok(f) => f,
        Err(e) => return fail(String::new(), format!("{e:#}")),
    };
    let Some((_, bundle)) = bundles.get(&fixture.bundle) else {
        return fail(
            fixture.name,
            format!(
                "no bundle with id {} in {}",
                fixture.bundle,
                bundles_dir.display()
            ),
        );
    };
    match replay(&fixture, bundle, bundles_dir).await {
        Ok((actual, unexpected)) => {
            let mut detail = String::new();
            if !unexpected.is_empty() {
                detail.push_str(&format!(
                    "requests with no recorded interaction: {}\n",
                    unexpected.join(", ")
                ));
            }
            if actual != fixture.expect {
                detail.push_str(&diff(&fixture.expect, &actual));
            }
            FixtureReport {
                file: file.to_path_buf(),
                name: fixture.name,
                passed: detail.is_empty(),
                detail,
                actual: Some(actual),
            }
        }
        Err(e) => fail(fixture.name, format!("{e:#}")),
    }
}

async fn replay(
    fixture: &Fixture,
    bundle: &Bundle,
    bundles_dir: &Path,
) -> Result<(Expect, Vec<String>)> {
    let keys = Arc::new(Keys::new());
    let st = Arc::new(ReplayState {
        interactions: fixture.interactions.clone(),
        served: Mutex::new(vec![false; fixture.interactions.len()]),
        answered: Mutex::new(0),
        unexpected: Mutex::new(Vec::new()),
        notify: tokio::sync::Notify::new(),
    });
    let router = axum::Router::new()
        .fallback(replay_handler)
        .with_state(st.clone());
    let (url, server) = serve(router).await?;
    let dir = tempfile::tempdir()?;
    let opts = system_options(
        dir.path(),
        bundles_dir,
        &bundle.provider,
        &format!("{url}/provider"),
        &keys,
    );
    let sys = LocalSystem::start(opts).await?;
    let result = async {
        let client = Client::new(&sys.url, &sys.dev_key)?;
        let (status, body) = client
            .create(
                &fixture.bundle,
                &fixture.input,
                &CreateOptions {
                    max_duration_seconds: fixture.max_duration_seconds,
                    ..CreateOptions::default()
                },
            )
            .await?;
        if status >= 300 {
            // Refused at the door: the outcome is the problem's error class.
            return Ok(Expect {
                outcome: format!("rejected_{status}"),
                error_class: body["error_class"].as_str().map(str::to_string),
                field: body["field"].as_str().map(str::to_string),
                outputs: vec![],
                usage: Value::Null,
                cost_usd_micros: 0,
            });
        }
        let id = body["id"].as_str().unwrap_or_default().to_string();
        let callback_url = sys.engine.callback_url(&bundle.provider, &id);
        let mut senders = Vec::new();
        for cb in fixture.callbacks.clone() {
            let st = st.clone();
            let url = callback_url.clone();
            let signer = keys.clone();
            senders.push(tokio::spawn(async move {
                loop {
                    let waiting = st.notify.notified();
                    if *st.answered.lock() >= cb.after {
                        break;
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(200), waiting).await;
                }
                let body = serde_json::to_vec(&cb.body).unwrap_or_default();
                let mut headers = cb.headers.clone();
                signer.sign(&mut headers, &body);
                let mut req = reqwest::Client::new().post(&url).body(body);
                for (k, v) in &headers {
                    req = req.header(k, v);
                }
                if !headers.contains_key("content-type") {
                    req = req.header("content-type", "application/json");
                }
                let _ = req.send().await;
            }));
        }
        let view = client
            .wait_final(&id, Duration::from_secs(60), |_| {})
            .await?;
        for s in senders {
            s.abort();
        }
        Ok::<_, anyhow::Error>(project(&view))
    }
    .await;
    sys.stop().await;
    server.abort();
    let unexpected = st.unexpected.lock().clone();
    Ok((result?, unexpected))
}
