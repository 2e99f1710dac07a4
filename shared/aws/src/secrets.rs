//! Provider credentials and signing secrets from AWS Secrets Manager, read at run time.
//!
//! The deployment's secret (`EXECUTOR_SECRET_ARN`) is a JSON object of string values: the
//! bundles' credentials (`OPENAI_API_KEY`, ...), `REPLICATE_WEBHOOK_SECRET` and
//! `EXECUTOR_WEBHOOK_SECRET` (docs/aws.md, "Secrets"). A function reads it at start (a secret
//! that cannot be read fails the start with one line naming it), keeps it, and reads it again
//! once the copy is older than [`REFRESH_AFTER`]; a failed refresh keeps the old copy and
//! warns. A rotation reaches every warm function within that time, with no redeploy.

use crate::config::AwsSetupError;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a function trusts its copy of the secret.
pub const REFRESH_AFTER: Duration = Duration::from_secs(300);

/// One secret's values, fetched at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretValues {
    /// Key → value.
    pub values: HashMap<String, String>,
}

/// Reads and caches one Secrets Manager secret.
pub struct SecretsCache {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    current: std::sync::Mutex<(SecretValues, Instant)>,
}

/// Parses a `SecretString`: a JSON object whose values are strings (other values are refused
/// by name, so a mistyped secret fails the start instead of a provider call).
pub fn parse(secret_id: &str, text: &str) -> Result<SecretValues, AwsSetupError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        AwsSetupError(format!(
            "secret {secret_id}: SecretString is not a JSON object: {e}"
        ))
    })?;
    let obj = v.as_object().ok_or_else(|| {
        AwsSetupError(format!(
            "secret {secret_id}: SecretString is not a JSON object"
        ))
    })?;
    let mut values = HashMap::new();
    for (k, v) in obj {
        let s = v
            .as_str()
            .ok_or_else(|| AwsSetupError(format!("secret {secret_id}: key {k} is not a string")))?;
        values.insert(k.clone(), s.to_string());
    }
    Ok(SecretValues { values })
}

impl SecretsCache {
    /// Reads the secret once (start-up: failure is an error naming it).
    pub async fn open(
        client: aws_sdk_secretsmanager::Client,
        secret_id: &str,
    ) -> Result<SecretsCache, AwsSetupError> {
        let values = fetch(&client, secret_id).await?;
        Ok(SecretsCache {
            client,
            secret_id: secret_id.to_string(),
            current: std::sync::Mutex::new((values, Instant::now())),
        })
    }

    /// The values as last read.
    pub fn values(&self) -> SecretValues {
        self.current
            .lock()
            .map(|c| c.0.clone())
            .unwrap_or(SecretValues {
                values: HashMap::new(),
            })
    }

    /// Reads the secret again if the copy is older than `max_age`; returns the new values when
    /// they changed. A failed read keeps the old copy (and is retried at the next call).
    pub async fn refresh_if_older(&self, max_age: Duration) -> Option<SecretValues> {
        let stale = self
            .current
            .lock()
            .map(|c| c.1.elapsed() >= max_age)
            .unwrap_or(true);
        if !stale {
            return None;
        }
        match fetch(&self.client, &self.secret_id).await {
            Ok(fresh) => {
                let mut cur = self.current.lock().ok()?;
                let changed = cur.0 != fresh;
                *cur = (fresh.clone(), Instant::now());
                changed.then_some(fresh)
            }
            Err(e) => {
                tracing::warn!(secret = %self.secret_id, error = %e, "secret refresh failed; keeping the cached values");
                None
            }
        }
    }
}

async fn fetch(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<SecretValues, AwsSetupError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            AwsSetupError(format!(
                "secret {secret_id} cannot be read: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
    let text = out.secret_string().ok_or_else(|| {
        AwsSetupError(format!(
            "secret {secret_id} has no SecretString (binary secrets are not supported)"
        ))
    })?;
    parse(secret_id, text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_secret_is_an_object_of_strings() {
        let v = parse("s", r#"{"OPENAI_API_KEY": "sk-1", "FAL_KEY": "k"}"#).unwrap();
        assert_eq!(v.values["OPENAI_API_KEY"], "sk-1");
        assert!(
            parse("s", "[1]")
                .unwrap_err()
                .0
                .contains("not a JSON object")
        );
        assert!(
            parse("s", r#"{"N": 1}"#)
                .unwrap_err()
                .0
                .contains("key N is not a string")
        );
    }
}
