//! Per-host protection in the outbound HTTP client: a bulkhead (bounded concurrent calls),
//! a circuit breaker (opens on consecutive failures or a failure rate, fails fast while open,
//! half-opens to probe), and retries with exponential backoff and full jitter that honour
//! `Retry-After` and draw on a retry budget so retries can't multiply load.
//!
//! Hand-written on purpose: the crates we looked at either tie the breaker to a tower stack
//! we don't otherwise use or lack half-open probing by failure rate; the whole is ~200 lines
//! and tested here. The adapter classifies responses; this module only applies policy.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Settings (all per host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResilienceConfig {
    /// Retries of one call after the first attempt.
    pub max_retries: u32,
    /// First retry delay cap (ms); doubles per retry; the delay is uniform in [0, cap].
    pub retry_base_ms: u64,
    /// Longest wait before a retry (ms); a longer `Retry-After` is left to the lifecycle.
    pub retry_max_ms: u64,
    /// Retries earned per first attempt (0.2: at most one retry per five calls, sustained).
    pub retry_budget_ratio: f64,
    /// Retries that may be spent before any are earned.
    pub retry_budget_initial: f64,
    /// Concurrent calls per host.
    pub bulkhead_per_host: usize,
    /// How long a call waits for a bulkhead slot before failing fast (ms).
    pub bulkhead_wait_ms: u64,
    /// Consecutive failures that open the breaker.
    pub breaker_consecutive_failures: u32,
    /// Failure rate over the window that opens the breaker.
    pub breaker_failure_rate: f64,
    /// Calls in the failure-rate window.
    pub breaker_window: usize,
    /// Minimum calls in the window before the rate counts.
    pub breaker_min_calls: usize,
    /// How long the breaker stays open before a probe (ms).
    pub breaker_open_ms: u64,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        ResilienceConfig {
            max_retries: 2,
            retry_base_ms: 200,
            retry_max_ms: 5_000,
            retry_budget_ratio: 0.2,
            retry_budget_initial: 20.0,
            bulkhead_per_host: 64,
            bulkhead_wait_ms: 1_000,
            breaker_consecutive_failures: 5,
            breaker_failure_rate: 0.5,
            breaker_window: 20,
            breaker_min_calls: 10,
            breaker_open_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// A breaker's view of the host.
#[derive(Debug)]
struct Breaker {
    state: State,
    consecutive: u32,
    window: VecDeque<bool>,
}

/// What a breaker allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Go ahead as the half-open probe.
    Probe,
    /// Fail fast.
    Open,
}

struct Host {
    bulkhead: Arc<Semaphore>,
    breaker: Mutex<Breaker>,
}

/// The per-host state of one client.
pub struct Resilience {
    cfg: ResilienceConfig,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    budget: Mutex<f64>,
}

impl Resilience {
    /// Fresh state.
    pub fn new(cfg: ResilienceConfig) -> Resilience {
        let budget = Mutex::new(cfg.retry_budget_initial);
        Resilience {
            cfg,
            hosts: Mutex::new(HashMap::new()),
            budget,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ResilienceConfig {
        &self.cfg
    }

    fn host(&self, host: &str) -> Arc<Host> {
        self.hosts
            .lock()
            .entry(host.to_string())
            .or_insert_with(|| {
                Arc::new(Host {
                    bulkhead: Arc::new(Semaphore::new(self.cfg.bulkhead_per_host.max(1))),
                    breaker: Mutex::new(Breaker {
                        state: State::Closed,
                        consecutive: 0,
                        window: VecDeque::new(),
                    }),
                })
            })
            .clone()
    }

    /// Asks the breaker of `host` whether a call may go out.
    pub fn admit(&self, host: &str) -> Admission {
        let h = self.host(host);
        let mut b = h.breaker.lock();
        match b.state {
            State::Closed => Admission::Allowed,
            State::Open { until } if Instant::now() >= until => {
                b.state = State::HalfOpen { probing: true };
                Admission::Probe
            }
            State::Open { .. } => Admission::Open,
            State::HalfOpen { probing: true } => Admission::Open,
            State::HalfOpen { probing: false } => {
                b.state = State::HalfOpen { probing: true };
                Admission::Probe
            }
        }
    }

    /// Records a call's health (`healthy = false` for unavailability: connect errors,
    /// timeouts, 5xx).
    pub fn record(&self, host: &str, healthy: bool) {
        let h = self.host(host);
        let mut b = h.breaker.lock();
        if let State::HalfOpen { .. } = b.state {
            b.state = if healthy {
                b.window.clear();
                b.consecutive = 0;
                State::Closed
            } else {
                State::Open {
                    until: Instant::now() + Duration::from_millis(self.cfg.breaker_open_ms),
                }
            };
            return;
        }
        b.consecutive = if healthy { 0 } else { b.consecutive + 1 };
        b.window.push_back(healthy);
        while b.window.len() > self.cfg.breaker_window.max(1) {
            b.window.pop_front();
        }
        let failures = b.window.iter().filter(|ok| !**ok).count();
        let rate_trips = b.window.len() >= self.cfg.breaker_min_calls
            && failures as f64 / b.window.len() as f64 >= self.cfg.breaker_failure_rate;
        if b.consecutive >= self.cfg.breaker_consecutive_failures || rate_trips {
            tracing::warn!(
                host,
                consecutive = b.consecutive,
                failures,
                "circuit breaker opened"
            );
            b.state = State::Open {
                until: Instant::now() + Duration::from_millis(self.cfg.breaker_open_ms),
            };
            b.window.clear();
            b.consecutive = 0;
        }
    }

    /// Whether the breaker of `host` is open now.
    pub fn is_open(&self, host: &str) -> bool {
        matches!(self.host(host).breaker.lock().state, State::Open { until } if Instant::now() < until)
    }

    /// A bulkhead slot for `host`, or `None` when it stays full for `bulkhead_wait_ms`.
    pub async fn slot(&self, host: &str) -> Option<OwnedSemaphorePermit> {
        let sem = self.host(host).bulkhead.clone();
        tokio::time::timeout(
            Duration::from_millis(self.cfg.bulkhead_wait_ms),
            sem.acquire_owned(),
        )
        .await
        .ok()
        .and_then(Result::ok)
    }

    /// Earns budget for a first attempt.
    pub fn earn(&self) {
        let mut b = self.budget.lock();
        *b = (*b + self.cfg.retry_budget_ratio).min(self.cfg.retry_budget_initial.max(1.0) * 5.0);
    }

    /// Spends one retry from the budget; false when it is exhausted.
    pub fn spend(&self) -> bool {
        let mut b = self.budget.lock();
        if *b >= 1.0 {
            *b -= 1.0;
            true
        } else {
            false
        }
    }

    /// The delay before retry number `retry` (1-based): full jitter, at least `retry_after`.
    pub fn delay_ms(&self, retry: u32, retry_after_ms: Option<u64>) -> u64 {
        use rand::Rng;
        let cap = self
            .cfg
            .retry_base_ms
            .saturating_mul(1u64 << retry.saturating_sub(1).min(16))
            .min(self.cfg.retry_max_ms);
        let jitter = if cap == 0 {
            0
        } else {
            rand::rng().random_range(0..=cap)
        };
        jitter.max(retry_after_ms.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ResilienceConfig {
        ResilienceConfig {
            breaker_open_ms: 50,
            breaker_consecutive_failures: 3,
            ..Default::default()
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_half_opens() {
        let r = Resilience::new(cfg());
        for _ in 0..3 {
            assert_eq!(r.admit("h"), Admission::Allowed);
            r.record("h", false);
        }
        assert_eq!(r.admit("h"), Admission::Open);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(r.admit("h"), Admission::Probe);
        assert_eq!(r.admit("h"), Admission::Open, "one probe at a time");
        r.record("h", false);
        assert_eq!(r.admit("h"), Admission::Open, "failed probe reopens");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(r.admit("h"), Admission::Probe);
        r.record("h", true);
        assert_eq!(
            r.admit("h"),
            Admission::Allowed,
            "closed after a good probe"
        );
        assert_eq!(r.admit("other"), Admission::Allowed, "per host");
    }

    #[test]
    fn opens_on_failure_rate() {
        let r = Resilience::new(ResilienceConfig {
            breaker_consecutive_failures: 100,
            ..cfg()
        });
        for i in 0..10 {
            r.record("h", i % 2 == 0);
        }
        assert_eq!(r.admit("h"), Admission::Open);
    }

    #[test]
    fn budget_limits_retries_and_delays_honour_retry_after() {
        let r = Resilience::new(ResilienceConfig {
            retry_budget_initial: 2.0,
            retry_budget_ratio: 0.5,
            ..cfg()
        });
        assert!(r.spend() && r.spend());
        assert!(!r.spend(), "budget exhausted");
        r.earn();
        r.earn();
        assert!(r.spend(), "earned back by first attempts");
        assert!(r.delay_ms(1, Some(1000)) >= 1000);
        assert!(r.delay_ms(3, None) <= 800);
    }
}
