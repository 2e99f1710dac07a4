//! Helpers shared by the integration tests: a started simulator, a tiny webhook receiver and
//! a polling loop.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use executor_simulators::{SimConfig, Simulators};
use serde_json::Value;
use tokio::sync::mpsc;

/// A simulator with 100 ms jobs and fast webhook retries.
pub async fn sim() -> Simulators {
    let config = SimConfig {
        job_duration_ms: 100,
        webhook_retry_delays_ms: vec![20, 20, 20],
        ..SimConfig::default()
    };
    Simulators::start(config).await.unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// One received webhook.
#[derive(Debug, Clone)]
pub struct Hook {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Hook {
    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).unwrap().to_str().unwrap().to_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct Receiver {
    tx: mpsc::UnboundedSender<Hook>,
    fail_first: AtomicU32,
}

/// Starts a receiver that answers 500 to the first `fail_first` posts; returns its URL and
/// the stream of received hooks (failed attempts included).
pub async fn receiver(fail_first: u32) -> (String, mpsc::UnboundedReceiver<Hook>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(Receiver {
        tx,
        fail_first: AtomicU32::new(fail_first),
    });
    async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
        r.tx.send(Hook { headers, body }).unwrap();
        let left = r.fail_first.load(Ordering::SeqCst);
        if left > 0 {
            r.fail_first.store(left - 1, Ordering::SeqCst);
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::NO_CONTENT
        }
    }
    let app = Router::new().route("/hook", post(hook)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), rx)
}

/// Next hook within 3 s.
pub async fn next_hook(rx: &mut mpsc::UnboundedReceiver<Hook>) -> Hook {
    tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .expect("webhook in time")
        .unwrap()
}

/// GETs `url` with `auth` headers until `done(body)` or 3 s; returns every body seen.
pub async fn poll_until(
    request: impl Fn() -> reqwest::RequestBuilder,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let resp = request().send().await.unwrap();
        assert_eq!(resp.status(), 200, "poll status");
        let body: Value = resp.json().await.unwrap();
        let finished = done(&body);
        seen.push(body);
        if finished {
            return seen;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "job did not finish: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// Downloads `url` and checks it is a PNG.
pub async fn assert_png(url: &str) {
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    let bytes = resp.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
}

/// Retries `check` for up to 2 s (stats are bumped after the receiver has answered).
pub async fn eventually(check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
