//! The Replicate prediction object as the API renders it (status `starting` → `processing` →
//! `succeeded` | `failed` | `canceled`, `metrics` only once terminal, `urls{get,cancel,web}`),
//! and the webhook events a phase change produces (`start`, `output`, `logs`, `completed`).

use std::time::Instant;

use serde_json::{Value, json};

use crate::clock::{message_id, rfc3339};
use crate::files::MediaKind;
use crate::jobs::{Job, Outcome, Phase};
use crate::provider::Provider;
use crate::state::SimState;
use crate::webhook::{Delivery, Signing};

/// Replicate's `error` for `sim:fail`.
pub const FAIL_MESSAGE: &str =
    "Prediction failed for an unknown reason. It might have run out of memory? (exitcode 2)";
/// Replicate's `error` for `sim:content_policy`.
pub const NSFW_MESSAGE: &str =
    "NSFW content detected. Try running it again, or try a different prompt.";

/// The `output` of a successful job, shaped by the kind of model.
fn output(job: &Job) -> Value {
    if job.outcome == Outcome::EmptyOutput {
        return json!([]);
    }
    match MediaKind::guess(&job.model) {
        MediaKind::Text => json!(["This ", "is ", "a ", "simulated ", "reply."]),
        MediaKind::Video => job.outputs.first().map_or(Value::Null, |f| json!(f.url)),
        MediaKind::Image => json!(
            job.outputs
                .iter()
                .map(|f| f.url.clone())
                .collect::<Vec<_>>()
        ),
    }
}

fn logs(job: &Job, now: Instant) -> Value {
    let mut logs = String::from("Using seed: 42\n");
    let pct = (job.progress(now) * 100.0).round();
    logs.push_str(&format!("{pct:>3}%|          | {pct}/100 [00:00<00:00]\n"));
    json!(logs)
}

/// The prediction object at `now`.
pub fn render(state: &SimState, job: &Job, now: Instant) -> Value {
    let base = state.base_url(Provider::Replicate);
    let phase = job.phase(now);
    let (status, out, logs, error) = match phase {
        Phase::Queued => ("starting", Value::Null, json!(""), Value::Null),
        Phase::Running => {
            let early = job.directives.early_output && job.outcome.is_success();
            (
                "processing",
                if early { output(job) } else { Value::Null },
                logs(job, now),
                Value::Null,
            )
        }
        Phase::Done(o) if o.is_success() => ("succeeded", output(job), logs(job, now), Value::Null),
        Phase::Done(Outcome::ContentPolicy) => {
            ("failed", Value::Null, logs(job, now), json!(NSFW_MESSAGE))
        }
        Phase::Done(_) => ("failed", Value::Null, logs(job, now), json!(FAIL_MESSAGE)),
        Phase::Canceled => ("canceled", Value::Null, Value::Null, Value::Null),
    };
    let started = job.started_wall(now).map(|t| rfc3339(t, 6));
    let terminal = job.terminal_after(now);
    let completed = terminal.map(|d| rfc3339(job.created_wall + d, 6));
    let mut p = json!({
        "id": job.id,
        "model": job.model,
        "version": job.variant,
        "input": job.input,
        "logs": logs,
        "output": out,
        "data_removed": false,
        "error": error,
        "source": "api",
        "status": status,
        "created_at": rfc3339(job.created_wall, 6),
        "started_at": started,
        "completed_at": completed,
        "urls": {
            "get": format!("{base}/v1/predictions/{}", job.id),
            "cancel": format!("{base}/v1/predictions/{}/cancel", job.id),
            "web": format!("https://replicate.com/p/{}", job.id),
        },
    });
    if let Some(total) = terminal {
        p["metrics"] = if phase == Phase::Canceled {
            json!({"total_time": total.as_secs_f64()})
        } else {
            let predict = total.saturating_sub(job.queue_for).as_secs_f64();
            json!({"predict_time": predict, "total_time": total.as_secs_f64()})
        };
    }
    p
}

/// Webhook events for a phase change, per `webhook_events_filter` (default: `completed`).
pub fn webhooks(
    state: &SimState,
    job: &Job,
    from: Option<Phase>,
    to: Phase,
    now: Instant,
) -> Vec<Delivery> {
    let Some(url) = &job.webhook else {
        return Vec::new();
    };
    let wants = |e: &str| {
        if job.webhook_events.is_empty() {
            e == "completed"
        } else {
            job.webhook_events.iter().any(|w| w == e)
        }
    };
    let early = job.directives.early_output && job.outcome.is_success();
    let mut events = 0;
    if from.is_none() && wants("start") {
        events += 1;
    }
    if to == Phase::Running && (wants("logs") || (wants("output") && early)) {
        events += 1;
    }
    let has_output = matches!(to, Phase::Done(o) if o.is_success());
    if to.is_terminal() && (wants("completed") || (wants("output") && has_output)) {
        events += 1;
    }
    let body = render(state, job, now).to_string().into_bytes();
    (0..events)
        .map(|_| Delivery {
            provider: Provider::Replicate,
            url: url.clone(),
            body: body.clone(),
            signing: Signing::StandardWebhooks {
                msg_id: message_id(),
            },
        })
        .collect()
}
