//! The Replicate prediction object as the API renders it (status `starting` → `processing` →
//! `succeeded` | `failed` | `canceled`, or `aborted` under `sim:aborted`, `metrics` only once terminal, `urls{get,cancel,web}`),
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
    // `sim:aborted`: terminated before it started running (the job stays queued for its
    // whole duration, see `create`): terminal `aborted`, no output, never started.
    let aborted = job.directives.has("aborted") && matches!(phase, Phase::Done(_));
    let (status, out, logs, error) = if aborted {
        ("aborted", Value::Null, Value::Null, Value::Null)
    } else {
        (status, out, logs, error)
    };
    let started = job
        .started_wall(now)
        .filter(|_| !job.directives.has("aborted"))
        .map(|t| rfc3339(t, 6));
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
        p["metrics"] = if phase == Phase::Canceled || aborted {
            json!({"total_time": total.as_secs_f64()})
        } else {
            let predict = total.saturating_sub(job.queue_for).as_secs_f64();
            json!({"predict_time": predict, "total_time": total.as_secs_f64()})
        };
    }
    p
}

/// Webhook events for a phase change, per `webhook_events_filter`. Without a filter the API
/// sends "whenever there are new outputs or the prediction has finished": `output` and
/// `completed`. An `output` event renders the prediction as the output appears: still
/// `processing`, with `output` set; `completed` follows with the terminal status.
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
            e == "completed" || e == "output"
        } else {
            job.webhook_events.iter().any(|w| w == e)
        }
    };
    let early = job.directives.early_output && job.outcome.is_success();
    let current = render(state, job, now);
    let mut bodies: Vec<Value> = Vec::new();
    if from.is_none() && wants("start") {
        bodies.push(current.clone());
    }
    if to == Phase::Running && (wants("logs") || (wants("output") && early)) {
        bodies.push(current.clone());
    }
    let has_output = matches!(to, Phase::Done(Outcome::Success))
        && !job.directives.has("aborted")
        && !(early && from == Some(Phase::Running));
    if to.is_terminal() && wants("output") && has_output {
        let mut appearing = current.clone();
        appearing["status"] = json!("processing");
        for k in ["completed_at", "metrics"] {
            if let Some(o) = appearing.as_object_mut() {
                o.remove(k);
            }
        }
        appearing["completed_at"] = Value::Null;
        bodies.push(appearing);
    }
    if to.is_terminal() && wants("completed") {
        bodies.push(current);
    }
    bodies
        .into_iter()
        .map(|body| Delivery {
            provider: Provider::Replicate,
            url: url.clone(),
            body: body.to_string().into_bytes(),
            signing: Signing::StandardWebhooks {
                msg_id: message_id(),
            },
        })
        .collect()
}
