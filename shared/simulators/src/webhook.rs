//! Webhook delivery: POSTs a signed (or, for Luma, unsigned) body to the job's webhook URL,
//! retrying on non-2xx or connection errors (same message id across retries, fresh timestamp
//! and signature per attempt), never following redirects, and honouring `sim:lose_callback`,
//! `sim:duplicate_callback` and `sim:late_callback=MS`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::unix_seconds;
use crate::directives::Directives;
use crate::provider::Provider;
use crate::signing::standard_webhooks_signature;
use crate::state::SimState;
use crate::stats::Counter;

/// How a delivery is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// Standard Webhooks (Replicate): `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks {
        /// The `msg_…` id shared by retries and duplicates of this event.
        msg_id: String,
    },
    /// fal: `X-Fal-Webhook-Request-Id/User-Id/Timestamp/Signature`.
    Fal {
        /// The request id the webhook is about.
        request_id: String,
    },
    /// No signature headers at all (Luma, Kling and Deepgram callbacks: none documented).
    None,
    /// A header the customer chose, sent as given (AssemblyAI `webhook_auth_header_name` /
    /// `webhook_auth_header_value`): a shared secret, no signature.
    Header {
        /// Header name.
        name: String,
        /// Header value.
        value: String,
    },
    /// HMAC-SHA256 of the raw body keyed with a secret, hex, as `sha256=<hex>` in `header`
    /// (BFL `X-BFL-Signature` with `webhook_secret`: UNCONFIRMED, from BFL's skills docs).
    HmacHex {
        /// Header name.
        header: String,
        /// The secret.
        secret: String,
    },
}

/// One event to deliver.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Provider sending it (for stats).
    pub provider: Provider,
    /// Target URL.
    pub url: String,
    /// Raw JSON body (signed as is).
    pub body: Vec<u8>,
    /// Signature scheme.
    pub signing: Signing,
}

/// Sends `delivery` in the background according to the job's directives.
pub fn dispatch(state: Arc<SimState>, delivery: Delivery, directives: &Directives) {
    if directives.lose_callback {
        state.stats.bump(delivery.provider, Counter::WebhookLost);
        return;
    }
    let copies = if directives.duplicate_callback { 2 } else { 1 };
    let delay = directives.late_callback_ms.map(Duration::from_millis);
    tokio::spawn(async move {
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        for _ in 0..copies {
            deliver_with_retries(&state, &delivery).await;
        }
    });
}

async fn deliver_with_retries(state: &SimState, delivery: &Delivery) {
    let delays = &state.config.webhook_retry_delays_ms;
    for attempt in 0..=delays.len() {
        if attempt > 0 {
            let wait = delays.get(attempt - 1).copied().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        if attempt_once(state, delivery).await {
            return;
        }
    }
    tracing::warn!(url = %delivery.url, "webhook delivery abandoned after retries");
}

async fn attempt_once(state: &SimState, delivery: &Delivery) -> bool {
    let timestamp = unix_seconds(SystemTime::now());
    let mut request = state
        .http
        .post(&delivery.url)
        .header("content-type", "application/json")
        .body(delivery.body.clone());
    match &delivery.signing {
        Signing::StandardWebhooks { msg_id } => {
            let signature = match standard_webhooks_signature(
                &state.replicate_key,
                msg_id,
                timestamp,
                &delivery.body,
            ) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot sign webhook");
                    return true;
                }
            };
            request = request
                .header("webhook-id", msg_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature);
        }
        Signing::Fal { request_id } => {
            let user_id = &state.config.fal_user_id;
            let signature = state
                .fal_signer
                .sign(request_id, user_id, timestamp, &delivery.body);
            request = request
                .header("x-fal-webhook-request-id", request_id)
                .header("x-fal-webhook-user-id", user_id)
                .header("x-fal-webhook-timestamp", timestamp.to_string())
                .header("x-fal-webhook-signature", signature);
        }
        Signing::None => {}
        Signing::Header { name, value } => {
            request = request.header(name.as_str(), value.as_str());
        }
        Signing::HmacHex { header, secret } => {
            use hmac::{Hmac, Mac};
            if let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
                mac.update(&delivery.body);
                let hex = hex::encode(mac.finalize().into_bytes());
                request = request.header(header.as_str(), format!("sha256={hex}"));
            }
        }
    }
    state.stats.bump(delivery.provider, Counter::WebhookSent);
    let ok = match request.send().await {
        Ok(resp) => resp.status().is_success(),
        Err(e) => {
            tracing::debug!(url = %delivery.url, error = %e, "webhook attempt failed");
            false
        }
    };
    let counter = if ok {
        Counter::WebhookDelivered
    } else {
        Counter::WebhookFailed
    };
    state.stats.bump(delivery.provider, counter);
    ok
}
