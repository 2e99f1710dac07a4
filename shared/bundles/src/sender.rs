//! Outbound customer webhooks: the outcome event POSTed as JSON, signed per Standard Webhooks
//! with the event id as `webhook-id` (stable across retries, so receivers deduplicate).

use crate::standard_webhooks;
use async_trait::async_trait;
use executor_lifecycle::netguard::OutboundPolicy;
use executor_lifecycle::{ErrorClass, Failure, OutcomeEvent, WebhookSender};
use std::time::Duration;

/// Delivers outcome events to customer URLs.
pub struct StandardWebhookSender {
    client: reqwest::Client,
    secret: String,
    policy: OutboundPolicy,
}

/// Resolves names for the delivering client and drops every address the policy refuses, so
/// a name pointing inside (10.0.0.5, 169.254.169.254, ...) cannot be reached, however it is
/// spelled and whatever it resolved to a moment ago: the addresses checked are the ones the
/// connection uses.
pub(crate) struct GuardedResolver(pub(crate) OutboundPolicy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<std::net::SocketAddr> = all
                .into_iter()
                .filter(|a| match policy.refuses(a.ip()) {
                    Some(why) => {
                        refused.get_or_insert(format!("{} is {why}", a.ip()));
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let why = refused.unwrap_or_else(|| "no address".into());
                return Err(format!("{host} resolves to no allowed address ({why})").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl StandardWebhookSender {
    /// A sender signing with `secret` (`whsec_` + base64 key) that reaches public addresses
    /// only.
    pub fn new(secret: &str) -> Result<StandardWebhookSender, String> {
        StandardWebhookSender::with_policy(secret, OutboundPolicy::default())
    }

    /// A sender whose reachable addresses are set by `policy` (loopback for development).
    /// Redirects are not followed; every attempt ends within 10 s.
    pub fn with_policy(
        secret: &str,
        policy: OutboundPolicy,
    ) -> Result<StandardWebhookSender, String> {
        StandardWebhookSender::with_timeout(secret, policy, Duration::from_secs(10))
    }

    /// As [`StandardWebhookSender::with_policy`], every attempt ending within `timeout`
    /// (tests with a slow customer endpoint).
    pub fn with_timeout(
        secret: &str,
        policy: OutboundPolicy,
        timeout: Duration,
    ) -> Result<StandardWebhookSender, String> {
        standard_webhooks::sign(secret, "probe", 0, b"")
            .map_err(|e| format!("webhook signing secret: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(std::sync::Arc::new(GuardedResolver(policy)))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(StandardWebhookSender {
            client,
            secret: secret.to_string(),
            policy,
        })
    }
}

/// The innermost cause of an error chain, for a message that says what actually happened.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[async_trait]
impl WebhookSender for StandardWebhookSender {
    async fn deliver(&self, url: &str, event: &OutcomeEvent) -> Result<(), Failure> {
        // A literal address is not resolved, so it is checked here; a name is checked on
        // every address it resolves to, by the resolver.
        self.policy.check_url(url).map_err(|why| {
            Failure::new(
                ErrorClass::DegradedFinalization,
                format!("customer webhook refused: {why}"),
            )
        })?;
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
                    "timed out".to_string()
                } else {
                    format!("could not connect: {}", root_cause(&e))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reqwest::dns::Resolve;
    use std::str::FromStr;

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        // A name is judged by what it resolves to, not by its spelling.
        let name = reqwest::dns::Name::from_str("localhost").unwrap();
        let err = GuardedResolver(OutboundPolicy::default())
            .resolve(name)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("loopback"), "{err}");
        let name = reqwest::dns::Name::from_str("localhost").unwrap();
        let addrs: Vec<_> = GuardedResolver(OutboundPolicy::dev())
            .resolve(name)
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
