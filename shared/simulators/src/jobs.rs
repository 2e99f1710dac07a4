//! The async job clock shared by Replicate, Runway and fal. A job's status is a pure function
//! of the time since its creation: queued for the first quarter of its duration, running until
//! the duration has elapsed, then terminal with the outcome its directives chose. A cancel
//! freezes it as cancelled. Provider modules only render these phases in their own words.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::Notify;

use crate::directives::Directives;
use crate::files::FileRef;
use crate::provider::Provider;

/// How a job ends if nobody cancels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeds with outputs.
    Success,
    /// Succeeds with an empty output (`sim:empty_output`).
    EmptyOutput,
    /// Fails (`sim:fail`).
    Fail,
    /// Fails on the provider's safety system (`sim:content_policy`).
    ContentPolicy,
    /// Fails input validation inside the model (`sim:invalid`, where the provider validates late).
    Invalid,
}

impl Outcome {
    /// The outcome chosen by directives (safety beats validation beats failure).
    pub fn from_directives(d: &Directives) -> Outcome {
        if d.content_policy {
            Outcome::ContentPolicy
        } else if d.invalid {
            Outcome::Invalid
        } else if d.fail {
            Outcome::Fail
        } else if d.empty_output {
            Outcome::EmptyOutput
        } else {
            Outcome::Success
        }
    }

    /// True for the two successful outcomes.
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Success | Outcome::EmptyOutput)
    }
}

/// Where a job is at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, not started.
    Queued,
    /// Running.
    Running,
    /// Finished with its [`Outcome`].
    Done(Outcome),
    /// Cancelled (or, for Runway, deleted).
    Canceled,
}

impl Phase {
    /// True once the job can no longer change.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Done(_) | Phase::Canceled)
    }
}

/// One simulated async job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Provider-shaped id.
    pub id: String,
    /// Provider owning the job.
    pub provider: Provider,
    /// Model (Replicate `owner/name`, fal app id, Runway model).
    pub model: String,
    /// Provider-specific route detail (Replicate version, fal path, Runway task type).
    pub variant: String,
    /// The request input as received.
    pub input: Value,
    /// Directives found in the request.
    pub directives: Directives,
    /// Creation instant, for the clock.
    pub created_at: Instant,
    /// Creation wall time, for timestamps.
    pub created_wall: SystemTime,
    /// Time spent queued.
    pub queue_for: Duration,
    /// Creation-to-terminal time.
    pub duration: Duration,
    /// How the job ends.
    pub outcome: Outcome,
    /// Generated output files (empty unless the outcome is [`Outcome::Success`]).
    pub outputs: Vec<FileRef>,
    /// Time after creation at which the job was cancelled.
    pub canceled_after: Option<Duration>,
    /// Deleted after finishing (Runway `DELETE` on a finished task): reported as cancelled.
    pub deleted: bool,
    /// Status reads answered 503 so far (`sim:poll_error`).
    pub poll_errors_served: u32,
    /// Webhook URL, if any.
    pub webhook: Option<String>,
    /// Webhook events requested (Replicate `webhook_events_filter`).
    pub webhook_events: Vec<String>,
    /// Woken on cancel so the webhook driver reacts at once.
    pub wake: Arc<Notify>,
}

impl Job {
    /// A job of `duration` created now; a quarter of it is spent queued.
    pub fn new(
        provider: Provider,
        id: String,
        input: Value,
        directives: Directives,
        duration: Duration,
    ) -> Job {
        Job {
            id,
            provider,
            model: String::new(),
            variant: String::new(),
            input,
            outcome: Outcome::from_directives(&directives),
            directives,
            created_at: Instant::now(),
            created_wall: SystemTime::now(),
            queue_for: duration / 4,
            duration,
            outputs: Vec::new(),
            canceled_after: None,
            deleted: false,
            poll_errors_served: 0,
            webhook: None,
            webhook_events: Vec::new(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Sets the job's output files. Its clock restarts: the job begins when its create is
    /// answered, after its outputs are made (a first video of a size takes ~0.1 s to make in
    /// a debug build, which would otherwise eat the job's first phases).
    pub fn set_outputs(&mut self, outputs: Vec<FileRef>) {
        self.outputs = outputs;
        self.created_at = Instant::now();
        self.created_wall = SystemTime::now();
    }

    fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created_at)
    }

    /// The phase at `now`.
    pub fn phase(&self, now: Instant) -> Phase {
        if self.canceled_after.is_some() || self.deleted {
            return Phase::Canceled;
        }
        let elapsed = self.elapsed(now);
        if elapsed >= self.duration {
            Phase::Done(self.outcome)
        } else if elapsed >= self.queue_for {
            Phase::Running
        } else {
            Phase::Queued
        }
    }

    /// When the phase next changes by itself, if it will.
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        if self.canceled_after.is_some() {
            return None;
        }
        let elapsed = self.elapsed(now);
        if elapsed < self.queue_for {
            Some(self.created_at + self.queue_for)
        } else if elapsed < self.duration {
            Some(self.created_at + self.duration)
        } else {
            None
        }
    }

    /// Fraction of the running time done (0 while queued, 1 when finished).
    pub fn progress(&self, now: Instant) -> f64 {
        let run = self.duration.saturating_sub(self.queue_for).as_secs_f64();
        let done = self
            .elapsed(now)
            .saturating_sub(self.queue_for)
            .as_secs_f64();
        if run <= 0.0 {
            1.0
        } else {
            (done / run).clamp(0.0, 1.0)
        }
    }

    /// Wall time the job started running, if it did.
    pub fn started_wall(&self, now: Instant) -> Option<SystemTime> {
        let started = self.elapsed(now) >= self.queue_for
            && self.canceled_after.is_none_or(|c| c >= self.queue_for);
        started.then(|| self.created_wall + self.queue_for)
    }

    /// Time from creation to the terminal status, once terminal.
    pub fn terminal_after(&self, now: Instant) -> Option<Duration> {
        match self.phase(now) {
            Phase::Canceled => self.canceled_after,
            Phase::Done(_) => Some(self.duration),
            _ => None,
        }
    }

    /// Cancels the job if it is not terminal yet; returns whether it changed.
    pub fn cancel(&mut self, now: Instant) -> bool {
        if self.phase(now).is_terminal() {
            return false;
        }
        self.canceled_after = Some(self.elapsed(now));
        self.wake.notify_one();
        true
    }
}

/// All jobs, by id.
#[derive(Debug, Default)]
pub struct JobStore {
    jobs: Mutex<Jobs>,
}

/// All jobs, and the ids of those not yet seen terminal (a terminal job stays terminal), so
/// counting in-flight jobs costs what is in flight, not every job ever created.
#[derive(Debug, Default)]
struct Jobs {
    all: HashMap<String, Job>,
    open: Vec<String>,
    /// Per provider, the most unfinished jobs there ever were at one instant.
    high_water: HashMap<Provider, u64>,
}

impl std::ops::Deref for Jobs {
    type Target = HashMap<String, Job>;
    fn deref(&self) -> &Self::Target {
        &self.all
    }
}

impl std::ops::DerefMut for Jobs {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.all
    }
}

impl JobStore {
    /// Stores a new job, and measures the provider's concurrency at this instant: the number
    /// of unfinished jobs only grows when a job is created, so the most there ever were is
    /// the most counted right after some insert — counted here, under the lock every insert
    /// takes, it is exact ([`JobStore::high_water`]).
    pub fn insert(&self, job: Job) {
        let mut jobs = self.jobs.lock();
        let provider = job.provider;
        jobs.open.push(job.id.clone());
        jobs.all.insert(job.id.clone(), job);
        let now = Instant::now();
        let Jobs {
            all,
            open,
            high_water,
        } = &mut *jobs;
        open.retain(|id| all.get(id).is_some_and(|j| !j.phase(now).is_terminal()));
        let n = open
            .iter()
            .filter(|id| all.get(*id).is_some_and(|j| j.provider == provider))
            .count() as u64;
        let hw = high_water.entry(provider).or_default();
        *hw = (*hw).max(n);
    }

    /// The most unfinished (queued or running) jobs `provider` ever had at one instant.
    pub fn high_water(&self, provider: Provider) -> u64 {
        self.jobs
            .lock()
            .high_water
            .get(&provider)
            .copied()
            .unwrap_or(0)
    }

    /// The most jobs of `provider` among those `keep` selects that were unfinished at one
    /// instant (a sweep over their lifetimes: created, to terminal or now), for an analysis
    /// that must leave some jobs out (e.g. the orphans of ambiguous creates).
    pub fn max_concurrent(&self, provider: Provider, keep: impl Fn(&Job) -> bool) -> u64 {
        let now = Instant::now();
        let jobs = self.jobs.lock();
        let mut edges: Vec<(Instant, i64)> = Vec::new();
        for j in jobs
            .all
            .values()
            .filter(|j| j.provider == provider && keep(j))
        {
            let end = match j.terminal_after(now) {
                Some(after) => j.created_at + after,
                None => now + Duration::from_secs(3600),
            };
            edges.push((j.created_at, 1));
            edges.push((end, -1));
        }
        // At equal instants an end comes before a start: a job that ends as another starts
        // does not overlap it.
        edges.sort_by_key(|(at, d)| (*at, *d));
        let (mut n, mut max) = (0i64, 0i64);
        for (_, d) in edges {
            n += d;
            max = max.max(n);
        }
        max as u64
    }

    /// A copy of job `id` of `provider`.
    pub fn get(&self, provider: Provider, id: &str) -> Option<Job> {
        self.jobs
            .lock()
            .get(id)
            .filter(|j| j.provider == provider)
            .cloned()
    }

    /// Copies of the jobs of `provider`, newest first.
    pub fn newest_first(&self, provider: Provider) -> Vec<Job> {
        let jobs = self.jobs.lock();
        let mut out: Vec<Job> = jobs
            .all
            .values()
            .filter(|j| j.provider == provider)
            .cloned()
            .collect();
        out.sort_by_key(|j| std::cmp::Reverse(j.created_at));
        out
    }

    /// Runs `f` on job `id` of `provider` under the lock.
    pub fn update<R>(
        &self,
        provider: Provider,
        id: &str,
        f: impl FnOnce(&mut Job) -> R,
    ) -> Option<R> {
        let mut jobs = self.jobs.lock();
        jobs.get_mut(id).filter(|j| j.provider == provider).map(f)
    }

    /// Unfinished jobs of `provider` at `now`.
    pub fn inflight(&self, provider: Provider, now: Instant) -> u64 {
        let mut jobs = self.jobs.lock();
        let Jobs { all, open, .. } = &mut *jobs;
        open.retain(|id| all.get(id).is_some_and(|j| !j.phase(now).is_terminal()));
        let n = open
            .iter()
            .filter(|id| all.get(*id).is_some_and(|j| j.provider == provider))
            .count();
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// Takes one `sim:poll_error` failure for job `id` if any are left; true if this read fails.
    pub fn take_poll_error(&self, provider: Provider, id: &str) -> bool {
        self.update(provider, id, |j| {
            let fail = j.poll_errors_served < j.directives.poll_error;
            if fail {
                j.poll_errors_served += 1;
            }
            fail
        })
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn job(ms: u64, d: Directives) -> Job {
        Job::new(
            Provider::Replicate,
            "j".into(),
            json!({}),
            d,
            Duration::from_millis(ms),
        )
    }

    #[test]
    fn phases_follow_the_clock() {
        let j = job(400, Directives::default());
        let t0 = j.created_at;
        assert_eq!(j.phase(t0), Phase::Queued);
        assert_eq!(j.phase(t0 + Duration::from_millis(150)), Phase::Running);
        assert_eq!(
            j.phase(t0 + Duration::from_millis(400)),
            Phase::Done(Outcome::Success)
        );
        assert_eq!(j.next_change(t0), Some(t0 + Duration::from_millis(100)));
        assert!(j.started_wall(t0).is_none());
    }

    #[test]
    fn concurrency_high_water_is_exact() {
        let store = JobStore::default();
        let mk = |id: &str, ms: u64| {
            let mut j = job(ms, Directives::default());
            j.id = id.into();
            j
        };
        store.insert(mk("a", 60_000));
        store.insert(mk("b", 0)); // finished at once: never concurrent with c
        store.insert(mk("c", 60_000));
        assert_eq!(store.high_water(Provider::Replicate), 2);
        assert_eq!(store.high_water(Provider::Runway), 0);
        store.update(Provider::Replicate, "a", |j| j.cancel(Instant::now()));
        store.insert(mk("d", 60_000));
        assert_eq!(store.high_water(Provider::Replicate), 2);
        store.insert(mk("e", 60_000));
        assert_eq!(store.high_water(Provider::Replicate), 3);
        assert_eq!(store.max_concurrent(Provider::Replicate, |_| true), 3);
        assert_eq!(
            store.max_concurrent(Provider::Replicate, |j| j.id != "e"),
            2
        );
    }

    #[test]
    fn cancel_freezes_and_is_idempotent() {
        let d = Directives {
            fail: true,
            ..Directives::default()
        };
        let mut j = job(400, d);
        let t0 = j.created_at;
        assert!(j.cancel(t0 + Duration::from_millis(50)));
        assert_eq!(j.phase(t0 + Duration::from_secs(9)), Phase::Canceled);
        assert!(!j.cancel(t0 + Duration::from_millis(60)));
        assert!(j.started_wall(t0 + Duration::from_secs(9)).is_none());
        let mut done = job(0, Directives::default());
        assert!(!done.cancel(Instant::now()));
    }
}
