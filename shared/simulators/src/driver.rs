//! Per-job webhook driver: a background task that follows one job's clock (waking early on
//! cancel) and asks the provider module, at every phase change, which webhook events to send.

use std::sync::Arc;
use std::time::Instant;

use crate::jobs::{Job, Phase};
use crate::provider::Provider;
use crate::state::SimState;
use crate::webhook::{Delivery, dispatch};

/// Renders the deliveries for a phase change (`from` is `None` right after creation).
pub type Render = fn(&SimState, &Job, Option<Phase>, Phase, Instant) -> Vec<Delivery>;

/// Starts the driver of job `id` if it has a webhook.
pub fn spawn(state: &Arc<SimState>, provider: Provider, id: &str, render: Render) {
    let Some(job) = state.jobs.get(provider, id) else {
        return;
    };
    if job.webhook.is_none() {
        return;
    }
    let state = Arc::clone(state);
    let id = id.to_owned();
    tokio::spawn(async move {
        let mut last: Option<Phase> = None;
        loop {
            let Some(job) = state.jobs.get(provider, &id) else {
                return;
            };
            let now = Instant::now();
            let phase = job.phase(now);
            if last != Some(phase) {
                for delivery in render(&state, &job, last, phase, now) {
                    dispatch(Arc::clone(&state), delivery, &job.directives);
                }
                last = Some(phase);
            }
            if phase.is_terminal() {
                return;
            }
            let wake = Arc::clone(&job.wake);
            match job.next_change(now) {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at.into()) => {}
                        () = wake.notified() => {}
                    }
                }
                None => wake.notified().await,
            }
        }
    });
}
