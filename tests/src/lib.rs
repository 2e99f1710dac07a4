//! Harness of the workspace-level end-to-end tests: a local system (embedded backend, real
//! HTTP API, real simulators) with fast timings, a client, and port wrappers that inject
//! faults (duplicated messages, crashes at protocol points).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod aws_sys;
pub mod chaos;
pub mod faulty;

use async_trait::async_trait;
use executor_cli::client::Client;
use executor_cli::local::{LocalOptions, LocalSystem};
use executor_lifecycle::crash::{CrashInjector, CrashPoint};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// A started system plus its temp dir.
pub struct Harness {
    /// The system.
    pub sys: LocalSystem,
    /// Client with the dev key.
    pub client: Client,
    _dir: tempfile::TempDir,
}

/// Options with timings fast enough for tests.
pub fn fast_options(dir: &std::path::Path) -> LocalOptions {
    let mut o = LocalOptions::dev(dir.to_path_buf());
    o.lifecycle.time_scale = 0.02;
    o.lifecycle.visibility_timeout_ms = 400;
    o.lifecycle.watchdog_margin_ms = 3_000;
    o.lifecycle.nudge_retry_ms = 50;
    o.lifecycle.reconcile_grace_ms = 1_000;
    o.lifecycle.delivery_retry_base_ms = 100;
    o.lifecycle.submit_retry_base_ms = 100;
    o.reconcile_every_ms = 300;
    o.worker_concurrency = 8;
    o
}

impl Harness {
    /// Starts a system with fast timings, after `tweak` adjusts the options.
    pub async fn start_with(tweak: impl FnOnce(&mut LocalOptions)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = fast_options(dir.path());
        tweak(&mut opts);
        let sys = LocalSystem::start(opts).await.unwrap();
        let client = Client::new(&sys.url, &sys.dev_key).unwrap();
        Harness {
            sys,
            client,
            _dir: dir,
        }
    }

    /// Starts a system with fast timings.
    pub async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    /// The model id of the first bundle of a shape.
    pub async fn model_of_shape(&self, shape: &str) -> (String, Value) {
        let models = self.client.models().await.unwrap();
        let all = models["data"].as_array().unwrap();
        // The reference model of each shape first (the suite's expectations name their
        // providers), any other of the shape otherwise.
        let preferred = [
            "openai/gpt-image-1",
            "runway/gen4-turbo",
            "black-forest-labs/flux-schnell",
        ];
        let m = all
            .iter()
            .find(|m| m["shape"] == shape && preferred.contains(&m["id"].as_str().unwrap_or("")))
            .or_else(|| all.iter().find(|m| m["shape"] == shape))
            .unwrap_or_else(|| panic!("no {shape} bundle"))
            .clone();
        (
            m["id"].as_str().unwrap().to_string(),
            m["input_schema"].clone(),
        )
    }

    /// A valid input for a schema with `text` as the prompt.
    pub fn input(schema: &Value, text: &str) -> Value {
        executor_cli::demo::input_for(schema, text)
    }

    /// Creates and waits until final; returns the final view.
    pub async fn run(&self, model: &str, input: &Value) -> Value {
        let (status, body) = self
            .client
            .create(model, input, &Default::default())
            .await
            .unwrap();
        assert!(status < 300, "create failed: {status} {body}");
        self.wait(body["id"].as_str().unwrap()).await
    }

    /// Waits until final and the final outbox is applied (outcome event published).
    pub async fn wait(&self, id: &str) -> Value {
        let v = self
            .client
            .wait_final(id, Duration::from_secs(30), |_| {})
            .await
            .unwrap();
        for _ in 0..200 {
            let g = executor_lifecycle::GuardStore::get(self.sys.store.as_ref(), id)
                .await
                .unwrap()
                .unwrap();
            if g.outbox.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        v
    }

    /// Outcome events stored for an execution.
    pub async fn outcome_events(&self, id: &str) -> usize {
        self.sys
            .store
            .outcome_events()
            .await
            .unwrap()
            .iter()
            .filter(|e| e.execution_id == id)
            .count()
    }

    /// Transition records of an execution.
    pub async fn transitions(&self, id: &str) -> Vec<executor_lifecycle::TransitionRecord> {
        self.sys.engine.transitions(id).await.unwrap()
    }

    /// Provider creates seen by the simulator for a prompt.
    pub fn creates(&self, provider: &str, prompt: &str) -> u64 {
        self.sys
            .simulators
            .as_ref()
            .unwrap()
            .stats()
            .creates_for_prompt(provider, prompt)
    }
}

/// Crashes once per (execution, point) at the chosen points.
#[derive(Default)]
pub struct CrashOnce {
    points: Vec<CrashPoint>,
    fired: Mutex<HashSet<(String, CrashPoint)>>,
}

impl CrashOnce {
    /// Crash once at each of `points`, for every execution.
    pub fn at(points: &[CrashPoint]) -> Arc<CrashOnce> {
        Arc::new(CrashOnce {
            points: points.to_vec(),
            fired: Mutex::new(HashSet::new()),
        })
    }

    /// How many crashes fired.
    pub fn fired(&self) -> usize {
        self.fired.lock().len()
    }
}

impl CrashInjector for CrashOnce {
    fn should_crash(&self, point: CrashPoint, execution_id: &str) -> bool {
        if !self.points.contains(&point) {
            return false;
        }
        self.fired.lock().insert((execution_id.to_string(), point))
    }
}

/// A queue that delivers every message twice (at-least-once taken literally).
pub struct DuplicatingQueue(pub Arc<dyn executor_lifecycle::Queue>);

#[async_trait]
impl executor_lifecycle::Queue for DuplicatingQueue {
    async fn send(
        &self,
        queue: executor_lifecycle::QueueName,
        body: &str,
        delay_ms: u64,
    ) -> Result<(), executor_lifecycle::StoreError> {
        self.0.send(queue, body, delay_ms).await?;
        self.0.send(queue, body, delay_ms + 5).await
    }
    async fn receive(
        &self,
        queue: executor_lifecycle::QueueName,
        max: usize,
        visibility_ms: u64,
    ) -> Result<Vec<executor_lifecycle::Delivery>, executor_lifecycle::StoreError> {
        self.0.receive(queue, max, visibility_ms).await
    }
    async fn ack(
        &self,
        queue: executor_lifecycle::QueueName,
        receipt: &str,
    ) -> Result<(), executor_lifecycle::StoreError> {
        self.0.ack(queue, receipt).await
    }
    async fn retry_later(
        &self,
        queue: executor_lifecycle::QueueName,
        receipt: &str,
        delay_ms: u64,
    ) -> Result<(), executor_lifecycle::StoreError> {
        self.0.retry_later(queue, receipt, delay_ms).await
    }
    async fn dead_letter(
        &self,
        queue: executor_lifecycle::QueueName,
        receipt: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), executor_lifecycle::StoreError> {
        self.0.dead_letter(queue, receipt, body, reason).await
    }
    async fn wait(&self, queue: executor_lifecycle::QueueName, timeout_ms: u64) {
        self.0.wait(queue, timeout_ms).await
    }
}

/// A customer webhook endpoint: verifies Standard Webhooks signatures, fails a given number of
/// deliveries with 500 first, and records every attempt.
pub mod customer {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use parking_lot::Mutex;
    use serde_json::Value;
    use std::sync::Arc;

    #[derive(Default)]
    pub struct Endpoint {
        /// Answer 500 to this many more requests (u32::MAX: always).
        pub fail_next: Mutex<u32>,
        /// Every request: (webhook-id, signature valid, answered 2xx).
        pub seen: Mutex<Vec<(String, bool, bool)>>,
        /// Bodies accepted with a 2xx.
        pub accepted: Mutex<Vec<Value>>,
        /// The signing secret deliveries are verified with.
        pub secret: String,
    }

    async fn receive(
        State(ep): State<Arc<Endpoint>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let valid =
            executor_bundles::standard_webhooks::verify(&ep.secret, &pairs, &body, now).is_ok();
        let id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let ok = {
            let mut f = ep.fail_next.lock();
            if *f > 0 {
                if *f != u32::MAX {
                    *f -= 1;
                }
                false
            } else {
                true
            }
        };
        ep.seen.lock().push((id, valid, ok));
        if ok && valid {
            ep.accepted
                .lock()
                .push(serde_json::from_slice(&body).unwrap());
            StatusCode::NO_CONTENT
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }

    /// Serves an endpoint on a free local port: its state and its URL.
    pub async fn endpoint(secret: &str, fail_next: u32) -> (Arc<Endpoint>, String) {
        let ep = Arc::new(Endpoint {
            fail_next: Mutex::new(fail_next),
            secret: secret.to_string(),
            ..Default::default()
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(ep.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (ep, url)
    }
}

/// Copies the repository's bundles (model files and `providers/`, not the fixtures) into
/// `dir`, for tests that run a variation of them.
pub fn copy_bundles(dir: &std::path::Path) {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundles");
    std::fs::create_dir_all(dir.join("providers")).unwrap();
    for sub in ["", "providers"] {
        for entry in std::fs::read_dir(repo.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
}
