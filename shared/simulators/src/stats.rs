//! Counters per provider (creates, rejections, polls, cancels, webhooks, inflight jobs and
//! creates per prompt) so tests can assert what the clients actually did, e.g. that a job was
//! never created twice. Exposed as [`crate::Simulators::stats`] and `GET /_sim/stats`.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use serde::Serialize;

use crate::provider::Provider;

/// Counters of one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProviderStats {
    /// Accepted create calls (jobs created; immediate providers — OpenAI, Stability,
    /// ElevenLabs: requests answered 200).
    pub creates: u64,
    /// Create calls answered with an error (auth, validation, 429, 5xx, concurrency cap).
    pub create_rejections: u64,
    /// Status reads (Replicate `GET /v1/predictions/{id}`, Runway `GET /v1/tasks/{id}`,
    /// fal `GET …/status`, Luma `GET …/generations/{id}`, MiniMax
    /// `GET /v1/query/video_generation`), including the ones failed by `sim:poll_error`.
    pub polls: u64,
    /// Result reads (fal `GET …/requests/{id}`, MiniMax `GET /v1/files/retrieve`).
    pub result_fetches: u64,
    /// Cancel calls on existing jobs (Luma: deletes).
    pub cancels: u64,
    /// Webhook POST attempts, duplicates and retries included.
    pub webhooks_sent: u64,
    /// Webhook attempts answered 2xx.
    pub webhooks_delivered: u64,
    /// Webhook attempts that failed (non-2xx or connection error).
    pub webhooks_failed: u64,
    /// Webhooks suppressed by `sim:lose_callback`.
    pub webhooks_lost: u64,
    /// Creates that made the job and then closed the connection unanswered.
    pub dropped_after_create: u64,
    /// Creates that made the job and then got a gateway's 5xx page.
    pub errors_after_create: u64,
    /// Jobs (immediate providers: requests) not yet finished, right now.
    pub inflight: u64,
    /// The provider's concurrency high-water mark: the most jobs (immediate providers:
    /// requests) unfinished at one instant. For async providers it is measured exactly at
    /// every create ([`crate::jobs::JobStore::high_water`]): queued and running jobs count.
    pub max_inflight: u64,
    /// Accepted creates per prompt string (see [`crate::directives::prompt_key`]).
    pub creates_by_prompt: BTreeMap<String, u64>,
}

/// Snapshot of every provider's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Keyed by provider prefix (`openai`, `runway`, `replicate`, `fal`, `stability`,
    /// `elevenlabs`, `luma`, `minimax`).
    pub providers: BTreeMap<String, ProviderStats>,
}

impl Stats {
    /// Counters of `provider` (all zero if unknown).
    pub fn provider(&self, provider: &str) -> ProviderStats {
        self.providers.get(provider).cloned().unwrap_or_default()
    }

    /// Accepted creates at `provider` whose prompt string is exactly `prompt`.
    pub fn creates_for_prompt(&self, provider: &str, prompt: &str) -> u64 {
        self.providers
            .get(provider)
            .and_then(|p| p.creates_by_prompt.get(prompt).copied())
            .unwrap_or(0)
    }
}

/// Which counter an event bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// [`ProviderStats::create_rejections`].
    CreateRejection,
    /// [`ProviderStats::polls`].
    Poll,
    /// [`ProviderStats::result_fetches`].
    ResultFetch,
    /// [`ProviderStats::cancels`].
    Cancel,
    /// [`ProviderStats::webhooks_sent`].
    WebhookSent,
    /// [`ProviderStats::webhooks_delivered`].
    WebhookDelivered,
    /// [`ProviderStats::webhooks_failed`].
    WebhookFailed,
    /// [`ProviderStats::webhooks_lost`].
    WebhookLost,
    /// [`ProviderStats::dropped_after_create`].
    DroppedAfterCreate,
    /// [`ProviderStats::errors_after_create`].
    ErrorAfterCreate,
}

/// Thread-safe recorder behind the snapshots.
#[derive(Debug, Default)]
pub struct StatsRecorder {
    inner: Mutex<BTreeMap<Provider, ProviderStats>>,
}

impl StatsRecorder {
    /// Bumps one counter.
    pub fn bump(&self, provider: Provider, counter: Counter) {
        let mut inner = self.inner.lock();
        let s = inner.entry(provider).or_default();
        let field = match counter {
            Counter::CreateRejection => &mut s.create_rejections,
            Counter::Poll => &mut s.polls,
            Counter::ResultFetch => &mut s.result_fetches,
            Counter::Cancel => &mut s.cancels,
            Counter::WebhookSent => &mut s.webhooks_sent,
            Counter::WebhookDelivered => &mut s.webhooks_delivered,
            Counter::WebhookFailed => &mut s.webhooks_failed,
            Counter::WebhookLost => &mut s.webhooks_lost,
            Counter::DroppedAfterCreate => &mut s.dropped_after_create,
            Counter::ErrorAfterCreate => &mut s.errors_after_create,
        };
        *field += 1;
    }

    /// Records an accepted create; `inflight` includes the new job.
    pub fn record_create(&self, provider: Provider, prompt: &str, inflight: u64) {
        let mut inner = self.inner.lock();
        let s = inner.entry(provider).or_default();
        s.creates += 1;
        *s.creates_by_prompt.entry(prompt.to_owned()).or_default() += 1;
        s.max_inflight = s.max_inflight.max(inflight);
    }

    /// Snapshot; `inflight` gives the current unfinished count of each provider.
    pub fn snapshot(
        &self,
        inflight: impl Fn(Provider) -> u64,
        high_water: impl Fn(Provider) -> u64,
    ) -> Stats {
        let inner = self.inner.lock();
        let providers = Provider::ALL
            .into_iter()
            .map(|p| {
                let mut s = inner.get(&p).cloned().unwrap_or_default();
                s.inflight = inflight(p);
                s.max_inflight = s.max_inflight.max(s.inflight).max(high_water(p));
                (p.as_str().to_owned(), s)
            })
            .collect();
        Stats { providers }
    }
}
