//! Shared state of the simulator server: configuration, the job clock, generated files,
//! fault counters, stats, signing keys and the webhook HTTP client.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::SimConfig;
use crate::faults::FaultBook;
use crate::files::FileStore;
use crate::jobs::JobStore;
use crate::provider::Provider;
use crate::signing::{FalSigner, decode_whsec};
use crate::stats::{Stats, StatsRecorder};

/// Everything the handlers share.
#[derive(Debug)]
pub struct SimState {
    /// The configuration the server was started with.
    pub config: SimConfig,
    /// Root URL (`http://127.0.0.1:PORT`) used in generated links.
    pub root_url: String,
    /// Async jobs of Replicate, Runway, fal, Luma and MiniMax.
    pub jobs: JobStore,
    /// Generated media.
    pub files: FileStore,
    /// Counters.
    pub stats: StatsRecorder,
    /// Fault hit counters and the seeded generator.
    pub faults: FaultBook,
    /// Replicate webhook HMAC key (decoded from the `whsec_` secret).
    pub replicate_key: Vec<u8>,
    /// fal webhook signer.
    pub fal_signer: FalSigner,
    /// Client for webhook deliveries (no redirects, 5 s timeout).
    pub http: reqwest::Client,
    /// Requests being answered, per immediate provider ([`Provider::is_immediate`]).
    immediate_inflight: HashMap<Provider, AtomicU64>,
}

impl SimState {
    /// Builds the state; `root_url` is used unless `config.public_base_url` is set.
    pub fn new(config: SimConfig, root_url: &str) -> anyhow::Result<Arc<SimState>> {
        let replicate_key = decode_whsec(&config.replicate_webhook_secret)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()?;
        let root_url = config
            .public_base_url
            .clone()
            .unwrap_or_else(|| root_url.to_owned())
            .trim_end_matches('/')
            .to_owned();
        Ok(Arc::new(SimState {
            faults: FaultBook::new(&config),
            config,
            root_url,
            jobs: JobStore::default(),
            files: FileStore::default(),
            stats: StatsRecorder::default(),
            replicate_key,
            fal_signer: FalSigner::generate(),
            http,
            immediate_inflight: Provider::ALL
                .into_iter()
                .filter(|p| p.is_immediate())
                .map(|p| (p, AtomicU64::new(0)))
                .collect(),
        }))
    }

    /// Base URL of `provider`, e.g. `http://127.0.0.1:PORT/replicate`.
    pub fn base_url(&self, provider: Provider) -> String {
        format!("{}/{}", self.root_url, provider.as_str())
    }

    /// Unfinished jobs (immediate providers: requests being answered) of `provider` right now.
    pub fn inflight(&self, provider: Provider) -> u64 {
        match self.immediate_inflight.get(&provider) {
            Some(n) => n.load(Ordering::SeqCst),
            None => self.jobs.inflight(provider, Instant::now()),
        }
    }

    /// A stats snapshot.
    pub fn stats(&self) -> Stats {
        self.stats
            .snapshot(|p| self.inflight(p), |p| self.jobs.high_water(p))
    }

    /// Default or `sim:duration` job duration.
    pub fn job_duration(&self, duration_ms: Option<u64>) -> Duration {
        Duration::from_millis(duration_ms.unwrap_or(self.config.job_duration_ms))
    }

    /// Marks one OpenAI request in flight until the guard drops; returns the new count.
    pub fn openai_request(self: &Arc<Self>) -> (InflightGuard, u64) {
        self.immediate_request(Provider::OpenAi)
    }

    /// Marks one request of an immediate provider in flight until the guard drops; returns
    /// the new count (always 1 for a provider that is not immediate: nothing is counted).
    pub fn immediate_request(self: &Arc<Self>, provider: Provider) -> (InflightGuard, u64) {
        let n = self
            .immediate_inflight
            .get(&provider)
            .map_or(1, |c| c.fetch_add(1, Ordering::SeqCst) + 1);
        (
            InflightGuard {
                state: Arc::clone(self),
                provider,
            },
            n,
        )
    }
}

/// Decrements the inflight count of an immediate provider on drop.
#[derive(Debug)]
pub struct InflightGuard {
    state: Arc<SimState>,
    provider: Provider,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if let Some(c) = self.state.immediate_inflight.get(&self.provider) {
            c.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
