//! Replay fixtures: a bundle's provider conversation, recorded once (`executor bundle
//! record`, [`record`]) and played back against the real lifecycle (`executor bundle test`,
//! [`playback`]). The format ([`fixture`]) is documented in `docs/fixtures.md`. This module
//! holds what playing back and recording share: the keys callbacks are signed with, the
//! embedded system they run the execution on, and how a recorded response is answered.

pub mod fixture;
pub mod playback;
pub mod record;

pub use fixture::{
    Callback, Expect, Fixture, Interaction, RecordedRequest, RecordedResponse, bless,
    bundles_by_id, diff, fixture_files, fixtures_of, project, read_fixture, write_fixture,
};
pub use playback::{FixtureReport, run_fixture};
pub use record::{Target, record};

use crate::local::LocalOptions;
use anyhow::Result;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The keys replays and recordings sign callbacks with.
struct Keys {
    whsec: String,
    fal: executor_simulators::signing::FalSigner,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            whsec: format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>())
            ),
            fal: executor_simulators::signing::FalSigner::generate(),
        }
    }

    /// Replaces signature headers with fresh ones over `body`.
    fn sign(&self, headers: &mut BTreeMap<String, String>, body: &[u8]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if headers.contains_key("webhook-signature") {
            let id = headers
                .get("webhook-id")
                .cloned()
                .unwrap_or_else(|| "msg_replay".into());
            let key = executor_simulators::signing::decode_whsec(&self.whsec).unwrap_or_default();
            if let Ok(sig) =
                executor_simulators::signing::standard_webhooks_signature(&key, &id, now, body)
            {
                headers.insert("webhook-timestamp".into(), now.to_string());
                headers.insert("webhook-signature".into(), sig);
            }
        }
        if headers.contains_key("x-fal-webhook-signature") {
            let rid = headers
                .get("x-fal-webhook-request-id")
                .cloned()
                .unwrap_or_default();
            let uid = headers
                .get("x-fal-webhook-user-id")
                .cloned()
                .unwrap_or_default();
            headers.insert("x-fal-webhook-timestamp".into(), now.to_string());
            headers.insert(
                "x-fal-webhook-signature".into(),
                self.fal.sign(&rid, &uid, now, body),
            );
        }
    }
}

/// Headers not worth keeping in a fixture (hop-by-hop, per-response noise).
const DROPPED: [&str; 6] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "date",
    "keep-alive",
    "server",
];

fn respond(r: &RecordedResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::new();
    for (k, v) in &r.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(v),
        ) {
            headers.insert(name, value);
        }
    }
    let body: Vec<u8> = if let Some(b64) = &r.body_base64 {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default()
    } else {
        match &r.body {
            None => Vec::new(),
            Some(Value::String(s))
                if !r
                    .headers
                    .get("content-type")
                    .is_some_and(|c| c.contains("json")) =>
            {
                s.as_bytes().to_vec()
            }
            Some(v) => {
                if !headers.contains_key("content-type") {
                    headers.insert(
                        "content-type",
                        axum::http::HeaderValue::from_static("application/json"),
                    );
                }
                serde_json::to_vec(v).unwrap_or_default()
            }
        }
    };
    (status, headers, body).into_response()
}

/// Options common to replay and record.
fn system_options(
    data_dir: &Path,
    bundles_dir: &Path,
    provider: &str,
    base_url: &str,
    keys: &Keys,
) -> LocalOptions {
    let mut opts = LocalOptions::dev(data_dir.to_path_buf());
    opts.bundles_dir = bundles_dir.to_path_buf();
    opts.simulators = None;
    opts.base_url_overrides
        .insert(provider.to_string(), base_url.to_string());
    opts.allow_missing_credentials = true;
    opts.lifecycle.time_scale = 0.01;
    // Production's outbound policy: no loopback media or webhook URLs.
    opts.lifecycle.webhook_targets = Default::default();
    opts.worker_concurrency = 4;
    opts.reconcile_every_ms = 0;
    opts.resilience.max_retries = 0;
    opts.callback_keys = Some((keys.whsec.clone(), vec![keys.fal.public_key_b64url()]));
    opts
}

async fn serve(router: axum::Router) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((url, task))
}
