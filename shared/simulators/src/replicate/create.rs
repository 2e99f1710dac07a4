//! Prediction creation: `POST /v1/predictions` (with `version`) and the official-model /
//! deployment routes. Validates the body, runs the admission gate, creates the job, starts
//! its webhook driver and honours `Prefer: wait[=N]` (201 + `Preference-Applied`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{EVENTS, P, authorize, prediction, problem, render, unprocessable, with_rate_headers};
use crate::directives::{Directives, prompt_key};
use crate::driver;
use crate::faults::{Rejection, admit};
use crate::files::MediaKind;
use crate::jobs::{Job, Outcome};
use crate::reply::{add_headers, header, json, parse_body};
use crate::state::SimState;
use crate::stats::Counter;

/// `(model, version)` from a `version` field: `owner/name:hex`, `owner/name` or `hex`.
fn parse_version(version: &str) -> Option<(String, String)> {
    let is_hex = |s: &str| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit());
    let is_model = |s: &str| s.split('/').count() == 2 && s.split('/').all(|p| !p.is_empty());
    match version.split_once(':') {
        Some((model, hex)) if is_model(model) && is_hex(hex) => {
            Some((model.to_owned(), hex.to_owned()))
        }
        None if is_model(version) => Some((
            version.to_owned(),
            hex::encode(Sha256::digest(version.as_bytes())),
        )),
        None if is_hex(version) => {
            Some((format!("sim/model-{}", &version[..8]), version.to_owned()))
        }
        _ => None,
    }
}

pub(super) async fn create_versioned(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    create(state, headers, raw, None).await
}

pub(super) async fn create_official(
    State(state): State<Arc<SimState>>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    create(state, headers, raw, Some(format!("{owner}/{name}"))).await
}

async fn create(
    state: Arc<SimState>,
    headers: HeaderMap,
    raw: Bytes,
    official: Option<String>,
) -> Response {
    let reject = |resp: Response| {
        state.stats.bump(P, Counter::CreateRejection);
        with_rate_headers(resp, 599)
    };
    if let Err(resp) = authorize(&headers) {
        return reject(resp);
    }
    let body = match parse_body(&raw) {
        Ok(b) if b.is_object() => b,
        _ => {
            return reject(problem(
                StatusCode::BAD_REQUEST,
                Some("Invalid JSON"),
                "The request body is not a valid JSON object",
            ));
        }
    };
    let directives = Directives::scan_as(&body, crate::provider::Provider::Replicate);
    if let Err(rejection) = admit(&state, P, &directives).await {
        return with_rate_headers(
            match rejection {
                Rejection::RateLimited | Rejection::Capacity => {
                    // The documented body, exactly (no `status`, no `title`), and Retry-After.
                    let s = state.config.replicate_throttle_seconds;
                    let mut resp = json(
                        StatusCode::TOO_MANY_REQUESTS,
                        &[("content-type", "application/problem+json".to_owned())],
                        &json!({"detail": format!("Request was throttled. Your rate limit resets in ~{s}s.")}),
                    );
                    add_headers(&mut resp, &[("retry-after", s.to_string())]);
                    resp
                }
                Rejection::ServerError => problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "Internal server error",
                ),
            },
            0,
        );
    }
    let (model, version) = match official {
        Some(model) => (model, "hidden".to_owned()),
        None => match body
            .get("version")
            .and_then(Value::as_str)
            .and_then(parse_version)
        {
            Some(mv) => mv,
            None => {
                return reject(problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some("Invalid version or not permitted"),
                    "The specified version does not exist (or perhaps you don't have permission to use it?)",
                ));
            }
        },
    };
    let Some(input) = body.get("input").filter(|i| i.is_object()).cloned() else {
        return reject(unprocessable(
            "- input: input is required",
            "input",
            "required",
        ));
    };
    let webhook = body
        .get("webhook")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let events: Vec<String> = body
        .get("webhook_events_filter")
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        });
    if let Some(bad) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        let detail = format!(
            "- webhook_events_filter.0: webhook_events_filter.0 must be one of the following: \"start\", \"output\", \"logs\", \"completed\" (got {bad:?})"
        );
        return reject(unprocessable(&detail, "webhook_events_filter.0", "enum"));
    }
    if directives.invalid {
        return reject(unprocessable(
            "- input.prompt: Does not match format 'sim:invalid'",
            "input.prompt",
            "format",
        ));
    }

    let id = crate::clock::lower_id();
    let mut job = Job::new(
        P,
        id.clone(),
        input.clone(),
        directives.clone(),
        state.job_duration(directives.duration_ms),
    );
    job.outcome = crate::faults::job_outcome(&state, P, &directives, job.outcome);
    job.model = model;
    job.variant = version;
    job.webhook = webhook;
    job.webhook_events = events;
    if directives.has("aborted") {
        // Never starts: queued until its deadline, then `aborted`.
        job.queue_for = job.duration;
    }
    if job.outcome == Outcome::Success {
        let count = input
            .get("num_outputs")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .clamp(1, 4) as usize;
        let dim = |k: &str| {
            input
                .get(k)
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(1024)
        };
        let kind = MediaKind::guess(&job.model);
        let count = if kind == MediaKind::Text { 0 } else { count };
        match state.files.generate(
            &state.base_url(P),
            &id,
            "out",
            kind,
            count,
            (dim("width"), dim("height")),
        ) {
            Ok(outputs) => job.set_outputs(outputs),
            Err(_) => {
                return reject(problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "Internal server error",
                ));
            }
        }
    }
    state.jobs.insert(job);
    state
        .stats
        .record_create(P, &prompt_key(&input), state.inflight(P));
    driver::spawn(&state, P, &id, prediction::webhooks);
    if let Some(ms) = directives.hang_after_create_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(gateway) = crate::faults::after_create(&state, P, &directives) {
        return gateway;
    }

    let prefer = header(&headers, "prefer").map(str::trim).map(str::to_owned);
    let wait = prefer.as_deref().and_then(parse_prefer_wait);
    if let Some(wait) = wait {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline
            && state
                .jobs
                .get(P, &id)
                .is_some_and(|j| !j.phase(Instant::now()).is_terminal())
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let Some(job) = state.jobs.get(P, &id) else {
        return reject(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "Internal server error",
        ));
    };
    let mut extra = vec![
        ("ratelimit-remaining", "599".to_owned()),
        ("ratelimit-reset", "1".to_owned()),
    ];
    if let (Some(pref), Some(_)) = (prefer, wait) {
        extra.push(("preference-applied", pref));
    }
    json(
        StatusCode::CREATED,
        &extra,
        &render(&state, &job, Instant::now()),
    )
}

/// `wait` → 60 s, `wait=N` (1..=60) → N s.
fn parse_prefer_wait(prefer: &str) -> Option<Duration> {
    let secs = match prefer.strip_prefix("wait")? {
        "" => 60,
        rest => rest
            .strip_prefix('=')?
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=60).contains(n))?,
    };
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_versions_and_prefer() {
        let hex = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa";
        assert_eq!(
            parse_version(&format!("stability-ai/sdxl:{hex}")).unwrap(),
            ("stability-ai/sdxl".into(), hex.into())
        );
        assert_eq!(
            parse_version("black-forest-labs/flux-schnell").unwrap().0,
            "black-forest-labs/flux-schnell"
        );
        assert_eq!(parse_version(hex).unwrap().1, hex);
        assert!(parse_version("nope").is_none());
        assert_eq!(parse_prefer_wait("wait"), Some(Duration::from_secs(60)));
        assert_eq!(parse_prefer_wait("wait=5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_prefer_wait("wait=61"), None);
    }
}
