//! Shared helpers of the integration tests: a catalog of the committed bundles pointed at the
//! provider simulators, call contexts, a driver loop that polls to the end, and a tiny HTTP
//! receiver that records what is POSTed to it (provider webhooks, customer webhooks).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use executor_bundles::catalog::{MapSecrets, SecretSource};
use executor_bundles::{BundleCatalog, CatalogOptions};
use executor_lifecycle::{
    CallContext, CallRecord, Catalog, ExecutionRequest, Failure, ModelDriver, PollOutcome,
    ProviderResult, SubmitOutcome,
};
use executor_simulators::{SimConfig, Simulators};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

static NEXT: AtomicU64 = AtomicU64::new(1);

/// The providers the committed bundles use.
pub const PROVIDERS: [&str; 4] = ["openai", "runway", "replicate", "fal"];

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Options pointing every provider at the simulators, with the simulators' webhook keys, no
/// transport retries (so a test sees the provider's first answer; the lifecycle owns
/// attempts) and the given secrets (placeholders for the missing ones).
pub fn sim_options(sims: &Simulators, secrets: HashMap<String, String>) -> CatalogOptions {
    let mut o = CatalogOptions::from_env();
    o.base_url_overrides = executor_simulators::Provider::ALL
        .iter()
        .map(|p| (p.as_str().to_string(), sims.base_url(p.as_str())))
        .collect();
    o.secrets = Arc::new(MapSecrets(secrets)) as Arc<dyn SecretSource>;
    o.allow_missing_credentials = true;
    o.replicate_webhook_secret = Some(sims.replicate_webhook_secret().to_string());
    o.fal_public_keys = vec![sims.fal_public_key_b64url()];
    o.resilience.max_retries = 0;
    o
}

/// Simulators plus the committed bundles pointed at them.
pub async fn setup() -> (Simulators, BundleCatalog) {
    let sims = Simulators::start(SimConfig {
        job_duration_ms: 150,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let catalog =
        BundleCatalog::load(&repo().join("bundles"), sim_options(&sims, HashMap::new())).unwrap();
    (sims, catalog)
}

/// A driver by model id.
pub fn driver(catalog: &BundleCatalog, model: &str) -> Arc<dyn ModelDriver> {
    catalog.get(model).unwrap_or_else(|| panic!("no {model}"))
}

/// A call context for `input` (validated, defaults applied) with a callback URL.
pub fn context(driver: &dyn ModelDriver, input: Value, callback_url: &str) -> CallContext {
    let input = driver.validate(&input).unwrap();
    let now = now_ms();
    CallContext {
        final_look: false,
        request: ExecutionRequest {
            retries: None,
            fallbacks: Default::default(),
            id: format!("ex_test{}", NEXT.fetch_add(1, Ordering::Relaxed)),
            tenant: "t".into(),
            model: driver.spec().id.clone(),
            input,
            webhook_url: None,
            idempotency_key: None,
            created_at_ms: now,
            max_duration_ms: 60_000,
        },
        job_id: None,
        attempt: 1,
        callback_url: callback_url.to_string(),
        deadline_ms: now + 60_000,
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How an execution ended at the driver level.
#[derive(Debug)]
pub enum End {
    /// A result.
    Succeeded(ProviderResult),
    /// A failure (refused create, failed job, or failed status call).
    Failed(Failure),
    /// Canceled on the provider side.
    Canceled,
}

/// Submits, then polls every 50 ms until the job is terminal; returns how it ended and every
/// call record made.
pub async fn run_to_end(driver: &dyn ModelDriver, mut ctx: CallContext) -> (End, Vec<CallRecord>) {
    let reply = driver.submit(&ctx).await;
    let mut calls = reply.calls;
    match reply.outcome {
        SubmitOutcome::Completed(r) => return (End::Succeeded(r), calls),
        SubmitOutcome::Rejected { failure, .. } => return (End::Failed(failure), calls),
        SubmitOutcome::Created { job_id, .. } => ctx.job_id = Some(job_id),
    }
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let reply = driver.poll(&ctx).await;
        calls.extend(reply.calls);
        match reply.outcome {
            PollOutcome::Pending { .. } => continue,
            PollOutcome::Succeeded(r) => return (End::Succeeded(r), calls),
            PollOutcome::Failed { failure, .. } | PollOutcome::CallFailed(failure) => {
                return (End::Failed(failure), calls);
            }
            PollOutcome::Canceled { .. } => return (End::Canceled, calls),
        }
    }
    panic!("job never finished")
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Received {
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A local HTTP endpoint answering every request with a fixed status.
pub struct Receiver {
    /// Its URL.
    pub url: String,
    /// What it received, in order.
    pub rx: tokio::sync::mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    /// The next request, or panics after `secs`.
    pub async fn next(&mut self, secs: u64) -> Received {
        tokio::time::timeout(Duration::from_secs(secs), self.rx.recv())
            .await
            .expect("nothing received in time")
            .expect("receiver closed")
    }
}

/// Starts a receiver answering `status` to everything.
pub async fn receiver(status: u16) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let headers: Vec<(String, String)> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = buf[head_end..].to_vec();
                let _ = tx.send(Received { headers, body });
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Receiver { url, rx }
}
