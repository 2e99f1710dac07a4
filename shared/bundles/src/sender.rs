//! Outbound customer webhooks: the outcome event POSTed as JSON, signed per Standard Webhooks
//! with the event id as `webhook-id` (stable across retries, so receivers deduplicate).

use crate::standard_webhooks;
use async_trait::async_trait;
use executor_lifecycle::{ErrorClass, Failure, OutcomeEvent, WebhookSender};
use std::time::Duration;

/// Delivers outcome events to customer URLs.
pub struct StandardWebhookSender {
    client: reqwest::Client,
    secret: String,
}

impl StandardWebhookSender {
    /// A sender signing with `secret` (`whsec_` + base64 key).
    pub fn new(secret: &str) -> Result<StandardWebhookSender, String> {
        standard_webhooks::sign(secret, "probe", 0, b"")
            .map_err(|e| format!("webhook signing secret: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(StandardWebhookSender {
            client,
            secret: secret.to_string(),
        })
    }
}

#[async_trait]
impl WebhookSender for StandardWebhookSender {
    async fn deliver(&self, url: &str, event: &OutcomeEvent) -> Result<(), Failure> {
        let body = serde_json::to_vec(event)
            .map_err(|e| Failure::new(ErrorClass::DegradedFinalization, e.to_string()))?;
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let sig = standard_webhooks::sign(&self.secret, &event.id, ts, &body)
            .map_err(|e| Failure::new(ErrorClass::DegradedFinalization, e.to_string()))?;
        let resp = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "could not connect"
                };
                Failure::new(
                    ErrorClass::DegradedFinalization,
                    format!("customer webhook {what}"),
                )
            })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Failure::new(
                ErrorClass::DegradedFinalization,
                format!("customer webhook answered {}", resp.status().as_u16()),
            )
            .with_status(resp.status().as_u16()))
        }
    }
}
