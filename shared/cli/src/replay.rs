//! Replay fixtures: a bundle's provider conversation, recorded once and played back against the
//! real lifecycle (`executor bundle test`), and the recorder that makes them
//! (`executor bundle record`). The format is documented in `docs/fixtures.md`.
//!
//! Playing back: a loopback server stands in for the provider (the bundle's base URL points at
//! it) and answers each request with the next recorded interaction of the same method and
//! path (the last one again once they are used up: a poll asked more often than recorded
//! sees the final state); recorded callbacks are sent to the execution's webhook route after
//! the interaction they followed, signed again with the replay's own keys (Standard Webhooks
//! and fal's Ed25519 signatures carry timestamps). The embedded system runs the execution
//! from the API to the end; its outcome (status, error class, outputs, cost) is compared with
//! the fixture's expectation and a difference printed as a diff.
//!
//! Recording: a loopback proxy sits between the system and the provider (the simulators, or
//! the real provider with credentials from the environment) and between the provider and the
//! webhook route, and writes down every exchange except request headers (credentials).

use crate::client::{Client, CreateOptions};
use crate::local::{LocalOptions, LocalSystem};
use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use executor_bundles::Bundle;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A replay fixture: one execution of one bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// The model id of the bundle.
    pub bundle: String,
    /// The case name (the file name without extension, by convention).
    pub name: String,
    /// What the case shows.
    #[serde(default)]
    pub description: String,
    /// Where the interactions came from (`simulator`, `provider`, or `edited: ...`).
    #[serde(default)]
    pub source: String,
    /// The execution input.
    pub input: Value,
    /// Provider HTTP exchanges, in order.
    pub interactions: Vec<Interaction>,
    /// Provider callbacks, each after an interaction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callbacks: Vec<Callback>,
    /// The execution's own time limit, as a create may ask (`max_duration_seconds`): a case
    /// that ends at its deadline (a callback that never comes) sets a short one, since replay
    /// scales waits but not deadlines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_seconds: Option<u64>,
    /// The expected normalized outcome.
    pub expect: Expect,
}

/// One HTTP exchange with the provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interaction {
    /// The request (matched on method and path).
    pub request: RecordedRequest,
    /// The answer.
    pub response: RecordedResponse,
}

/// A request as recorded (no headers: they carry credentials).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Path below the provider's base URL.
    pub path: String,
    /// Query parameters (informational).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// JSON body, or a note of the body kind (informational).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub body: Value,
}

/// A response as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedResponse {
    /// Status.
    pub status: u16,
    /// Headers (lower-case names).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (or a text body as a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// A binary body, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

/// A provider callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    /// Sent once this many interactions have been answered (1 = after the first).
    pub after: usize,
    /// Headers (signature headers are computed again at replay).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Value,
}

/// The normalized outcome a fixture expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `succeeded`, `failed`, `canceled`, ...
    pub outcome: String,
    /// The error class of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    /// The input field a validation error names (a JSON pointer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Outputs (kind, mime type, dimensions, duration, url; inline data as its length).
    #[serde(default)]
    pub outputs: Vec<Value>,
    /// Usage figures.
    #[serde(default)]
    pub usage: Value,
    /// Provider cost in micro-dollars.
    pub cost_usd_micros: i64,
}

/// The comparable projection of an execution view.
pub fn project(view: &Value) -> Expect {
    let outputs = view["outputs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    let mut p = serde_json::Map::new();
                    for k in [
                        "kind",
                        "mime_type",
                        "width",
                        "height",
                        "duration_seconds",
                        "url",
                    ] {
                        if !o[k].is_null() {
                            p.insert(k.into(), o[k].clone());
                        }
                    }
                    // Media stored at ingestion: its name is the SHA-256 of the bytes (the
                    // host and execution id of the URL differ on every run).
                    if let Some(name) = o["url"]
                        .as_str()
                        .and_then(|u| u.split_once("/v1/media/"))
                        .and_then(|(_, rest)| rest.rsplit('/').next())
                    {
                        p.remove("url");
                        p.insert("stored".into(), json!(name));
                    }
                    if let Some(d) = o["data"].as_str() {
                        p.insert("data_length".into(), json!(d.len()));
                    } else if !o["data"].is_null() {
                        p.insert("data".into(), o["data"].clone());
                    }
                    Value::Object(p)
                })
                .collect()
        })
        .unwrap_or_default();
    Expect {
        outcome: view["outcome"]
            .as_str()
            .unwrap_or(view["status"].as_str().unwrap_or(""))
            .to_string(),
        error_class: view["error"]["class"].as_str().map(str::to_string),
        field: view["error"]["field"].as_str().map(str::to_string),
        outputs,
        usage: view["usage"].clone(),
        cost_usd_micros: view["cost"]["provider_usd_micros"].as_i64().unwrap_or(0),
    }
}

/// Reads a fixture file.
pub fn read_fixture(path: &Path) -> Result<Fixture> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("{}: not a fixture", path.display()))
}

/// The fixture files under a directory (recursively), sorted.
pub fn fixture_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("{}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The bundles of a directory, by model id.
pub fn bundles_by_id(dir: &Path) -> Result<BTreeMap<String, (PathBuf, Bundle)>> {
    let mut out = BTreeMap::new();
    for f in executor_bundles::catalog::bundle_files(dir)? {
        match executor_bundles::catalog::check_file(&f) {
            Ok(b) => {
                out.insert(b.id.clone(), (f, b));
            }
            Err(issues) => bail!(
                "{}",
                issues
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }
    Ok(out)
}

/// The keys replays and recordings sign callbacks with.
struct Keys {
    whsec: String,
    fal: executor_simulators::signing::FalSigner,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            whsec: format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>())
            ),
            fal: executor_simulators::signing::FalSigner::generate(),
        }
    }

    /// Replaces signature headers with fresh ones over `body`.
    fn sign(&self, headers: &mut BTreeMap<String, String>, body: &[u8]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if headers.contains_key("webhook-signature") {
            let id = headers
                .get("webhook-id")
                .cloned()
                .unwrap_or_else(|| "msg_replay".into());
            let key = executor_simulators::signing::decode_whsec(&self.whsec).unwrap_or_default();
            if let Ok(sig) =
                executor_simulators::signing::standard_webhooks_signature(&key, &id, now, body)
            {
                headers.insert("webhook-timestamp".into(), now.to_string());
                headers.insert("webhook-signature".into(), sig);
            }
        }
        if headers.contains_key("x-fal-webhook-signature") {
            let rid = headers
                .get("x-fal-webhook-request-id")
                .cloned()
                .unwrap_or_default();
            let uid = headers
                .get("x-fal-webhook-user-id")
                .cloned()
                .unwrap_or_default();
            headers.insert("x-fal-webhook-timestamp".into(), now.to_string());
            headers.insert(
                "x-fal-webhook-signature".into(),
                self.fal.sign(&rid, &uid, now, body),
            );
        }
    }
}

/// Headers not worth keeping in a fixture (hop-by-hop, per-response noise).
const DROPPED: [&str; 6] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "date",
    "keep-alive",
    "server",
];

// ---------------------------------------------------------------- replay

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

fn respond(r: &RecordedResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::new();
    for (k, v) in &r.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(v),
        ) {
            headers.insert(name, value);
        }
    }
    let body: Vec<u8> = if let Some(b64) = &r.body_base64 {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default()
    } else {
        match &r.body {
            None => Vec::new(),
            Some(Value::String(s))
                if !r
                    .headers
                    .get("content-type")
                    .is_some_and(|c| c.contains("json")) =>
            {
                s.as_bytes().to_vec()
            }
            Some(v) => {
                if !headers.contains_key("content-type") {
                    headers.insert(
                        "content-type",
                        axum::http::HeaderValue::from_static("application/json"),
                    );
                }
                serde_json::to_vec(v).unwrap_or_default()
            }
        }
    };
    (status, headers, body).into_response()
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

/// Options common to replay and record.
fn system_options(
    data_dir: &Path,
    bundles_dir: &Path,
    provider: &str,
    base_url: &str,
    keys: &Keys,
) -> LocalOptions {
    let mut opts = LocalOptions::dev(data_dir.to_path_buf());
    opts.bundles_dir = bundles_dir.to_path_buf();
    opts.simulators = None;
    opts.base_url_overrides
        .insert(provider.to_string(), base_url.to_string());
    opts.allow_missing_credentials = true;
    opts.lifecycle.time_scale = 0.01;
    // Production's outbound policy: no loopback media or webhook URLs.
    opts.lifecycle.webhook_targets = Default::default();
    opts.worker_concurrency = 4;
    opts.reconcile_every_ms = 0;
    opts.resilience.max_retries = 0;
    opts.callback_keys = Some((keys.whsec.clone(), vec![keys.fal.public_key_b64url()]));
    opts
}

async fn serve(router: axum::Router) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((url, task))
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

/// A line diff of two outcomes (YAML).
pub fn diff(expected: &Expect, actual: &Expect) -> String {
    let a = serde_yaml_ng::to_string(expected).unwrap_or_default();
    let b = serde_yaml_ng::to_string(actual).unwrap_or_default();
    let mut out = String::from("--- expected\n+++ actual\n");
    for change in similar::TextDiff::from_lines(&a, &b).iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => "-",
            similar::ChangeTag::Insert => "+",
            similar::ChangeTag::Equal => " ",
        };
        out.push_str(&format!("{sign}{change}"));
    }
    out
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

// ---------------------------------------------------------------- record

struct RecordState {
    target: String,
    http: reqwest::Client,
    interactions: Mutex<Vec<Interaction>>,
    callbacks: Mutex<Vec<Callback>>,
    system: Mutex<Option<String>>,
}

fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    q.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

fn body_value(content_type: &str, bytes: &[u8]) -> (Option<Value>, Option<String>) {
    if bytes.is_empty() {
        return (None, None);
    }
    if content_type.contains("json")
        && let Ok(v) = serde_json::from_slice::<Value>(bytes)
    {
        return (Some(v), None);
    }
    if content_type.starts_with("text/")
        && let Ok(s) = std::str::from_utf8(bytes)
    {
        return (Some(Value::String(s.to_string())), None);
    }
    (
        None,
        Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
    )
}

async fn record_handler(
    State(st): State<Arc<RecordState>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if let Some(rest) = path.strip_prefix("/v1/webhooks/") {
        // A provider callback on its way to the system.
        let mut kept = BTreeMap::new();
        for (k, v) in &headers {
            let k = k.as_str().to_ascii_lowercase();
            if k.starts_with("webhook-") || k.starts_with("x-fal-") || k == "content-type" {
                kept.insert(k, v.to_str().unwrap_or_default().to_string());
            }
        }
        let value = serde_json::from_slice::<Value>(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
        let after = st.interactions.lock().len();
        st.callbacks.lock().push(Callback {
            after,
            headers: kept,
            body: value,
        });
        let Some(system) = st.system.lock().clone() else {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        };
        let mut req = st
            .http
            .post(format!("{system}/v1/webhooks/{rest}"))
            .body(body.to_vec());
        for (k, v) in &headers {
            if k != "host" && k != "content-length" {
                req = req.header(k, v);
            }
        }
        return match req.send().await {
            Ok(r) => StatusCode::from_u16(r.status().as_u16())
                .unwrap_or(StatusCode::OK)
                .into_response(),
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        };
    }
    let sub = path.strip_prefix("/provider").unwrap_or(&path).to_string();
    let mut url = format!("{}{sub}", st.target);
    if let Some(q) = uri.query() {
        url = format!("{url}?{q}");
    }
    let mut req = st.http.request(method.clone(), &url).body(body.to_vec());
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let request_body = if content_type.contains("json") {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else if content_type.starts_with("multipart/") {
        json!({"multipart_bytes": body.len()})
    } else if body.is_empty() {
        Value::Null
    } else {
        json!({"bytes": body.len()})
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("record proxy: {e}")).into_response();
        }
    };
    let status = resp.status().as_u16();
    let mut rh = BTreeMap::new();
    for (k, v) in resp.headers() {
        let k = k.as_str().to_ascii_lowercase();
        if !DROPPED.contains(&k.as_str())
            && let Ok(v) = v.to_str()
        {
            rh.insert(k, v.to_string());
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    let ct = rh.get("content-type").cloned().unwrap_or_default();
    let (b, b64) = body_value(&ct, &bytes);
    let recorded = RecordedResponse {
        status,
        headers: rh,
        body: b,
        body_base64: b64,
    };
    st.interactions.lock().push(Interaction {
        request: RecordedRequest {
            method: method.to_string(),
            path: sub,
            query: query_map(uri.query()),
            body: request_body,
        },
        response: recorded.clone(),
    });
    respond(&recorded)
}

/// Where a recording talks to.
pub enum Target {
    /// The in-process simulators.
    Simulators,
    /// The real provider (its bundle's base URL), credentials from the environment.
    Provider,
}

/// Records one execution of `model` with `input` as a fixture named `name`.
pub async fn record(
    bundles_dir: &Path,
    model: &str,
    input: Value,
    name: &str,
    description: &str,
    target: Target,
) -> Result<Fixture> {
    let bundles = bundles_by_id(bundles_dir)?;
    let Some((_, bundle)) = bundles.get(model) else {
        bail!(
            "no bundle with id {model} in {} (known: {})",
            bundles_dir.display(),
            bundles.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    };
    let keys = Keys::new();
    let mut sim_cfg = executor_simulators::SimConfig {
        job_duration_ms: 400,
        ..Default::default()
    };
    sim_cfg.replicate_webhook_secret = keys.whsec.clone();
    let (sims, target_url, source) = match target {
        Target::Simulators => {
            let sims = executor_simulators::Simulators::start(sim_cfg).await?;
            let url = sims.base_url(&bundle.provider);
            (Some(sims), url, "simulator".to_string())
        }
        Target::Provider => {
            for c in &bundle.credentials {
                if std::env::var(c).map(|v| v.is_empty()).unwrap_or(true) {
                    bail!(
                        "recording against {} needs {c} in the environment",
                        bundle.provider
                    );
                }
            }
            (None, bundle.base_url.clone(), "provider".to_string())
        }
    };
    let st = Arc::new(RecordState {
        target: target_url.trim_end_matches('/').to_string(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        interactions: Mutex::new(Vec::new()),
        callbacks: Mutex::new(Vec::new()),
        system: Mutex::new(None),
    });
    let router = axum::Router::new()
        .fallback(record_handler)
        .with_state(st.clone());
    let (proxy, server) = serve(router).await?;
    let dir = tempfile::tempdir()?;
    let mut opts = system_options(
        dir.path(),
        bundles_dir,
        &bundle.provider,
        &format!("{proxy}/provider"),
        &keys,
    );
    opts.public_base_url = Some(proxy.clone());
    if let Some(s) = &sims {
        opts.callback_keys = Some((
            s.replicate_webhook_secret().to_string(),
            vec![s.fal_public_key_b64url()],
        ));
    } else {
        opts.allow_missing_credentials = false;
        opts.callback_keys = None;
    }
    let sys = LocalSystem::start(opts).await?;
    *st.system.lock() = Some(sys.url.clone());
    let outcome = async {
        let client = Client::new(&sys.url, &sys.dev_key)?;
        let (status, body) = client
            .create(model, &input, &CreateOptions::default())
            .await?;
        if status >= 300 {
            // Refused at the door: the fixture says so (and that the provider saw nothing).
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
        let view = client
            .wait_final(&id, Duration::from_secs(300), |_| {})
            .await?;
        // Let late callbacks (e.g. a second completed event) land in the recording.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<_, anyhow::Error>(project(&view))
    }
    .await;
    sys.stop().await;
    server.abort();
    drop(sims);
    let expect = outcome?;
    let mut fixture = Fixture {
        bundle: model.to_string(),
        name: name.to_string(),
        description: description.to_string(),
        source,
        input,
        interactions: st.interactions.lock().clone(),
        callbacks: st.callbacks.lock().clone(),
        max_duration_seconds: None,
        expect,
    };
    // URLs the simulator minted name a loopback port that will not exist at replay: write
    // them as the provider's own base URL (the replay serves them verbatim, so outputs stay
    // comparable).
    // The callback URLs the system handed out name the proxy's port: write a neutral host.
    let mut text = serde_json::to_string(&fixture)?;
    if matches!(target, Target::Simulators) {
        text = text.replace(&target_url, bundle.base_url.trim_end_matches('/'));
    }
    text = text.replace(&proxy, "https://executor.example");
    fixture = serde_json::from_str(&text)?;
    Ok(fixture)
}

/// Rewrites a fixture file's expectation with an actual outcome (`bundle test --bless`).
pub fn bless(file: &Path, actual: &Expect) -> Result<()> {
    let mut f = read_fixture(file)?;
    f.expect = actual.clone();
    let text = std::fs::read_to_string(file)?;
    let header: String = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(file, format!("{header}{}", serde_yaml_ng::to_string(&f)?))?;
    Ok(())
}

/// Writes a fixture as YAML under `dir/<bundle file stem>/<name>.yaml`.
pub fn write_fixture(dir: &Path, bundle_file: &Path, fixture: &Fixture) -> Result<PathBuf> {
    let stem = bundle_file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "bundle".into());
    let out = dir.join(stem).join(format!("{}.yaml", fixture.name));
    if let Some(p) = out.parent() {
        std::fs::create_dir_all(p)?;
    }
    let text = format!(
        "# Replay fixture (docs/fixtures.md). Replay: executor bundle test {}\n{}",
        bundle_file.display(),
        serde_yaml_ng::to_string(fixture)?
    );
    std::fs::write(&out, text)?;
    Ok(out)
}

/// The fixtures of one bundle: `dir/<bundle file stem>/`.
pub fn fixtures_of(dir: &Path, bundle_file: &Path) -> PathBuf {
    dir.join(
        bundle_file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default(),
    )
}
