//! What a development system has that a deployment does not: the `dev` tenant and its key,
//! the built-in webhook signing secret, and the catalog pointed at the provider simulators.
//! `executor dev` uses it on both backends (embedded and `--backend aws`).

use anyhow::{Result, bail};
use executor_bundles::CatalogOptions;
use executor_simulators::Simulators;

/// The tenant of the key `executor dev` makes (or takes from `--api-key`).
pub const DEV_TENANT: &str = "dev";

/// The development secret outbound customer webhooks are signed with unless one is given.
pub const DEV_WEBHOOK_SECRET: &str = "whsec_ZGV2LW91dGJvdW5kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM=";

/// A new API key for `tenant`, in the format the API and `executor dev` use.
pub fn new_key(tenant: &str) -> String {
    format!("exk_{tenant}_{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// A key given on the command line (`--api-key`): non-empty, no whitespace (the API reads it
/// from `Authorization: Bearer <key>`).
pub fn check_key_text(key: &str) -> Result<()> {
    if key.trim().is_empty() || key.contains(char::is_whitespace) {
        bail!("--api-key must be a non-empty key without spaces");
    }
    Ok(())
}

/// The dev tenant's key: the one given (checked), or a new one.
pub fn dev_key(given: Option<String>) -> Result<String> {
    match given {
        Some(k) => {
            check_key_text(&k)?;
            Ok(k)
        }
        None => Ok(new_key(DEV_TENANT)),
    }
}

/// Points every provider of the catalog at the simulators, with their callback keys; no
/// provider credential is needed then.
pub fn point_at_simulators(catalog: &mut CatalogOptions, sims: &Simulators) {
    for provider in executor_simulators::Provider::ALL.map(|p| p.as_str()) {
        catalog
            .base_url_overrides
            .insert(provider.to_string(), sims.base_url(provider));
    }
    catalog.replicate_webhook_secret = Some(sims.replicate_webhook_secret().to_string());
    catalog.fal_public_keys = vec![sims.fal_public_key_b64url()];
    catalog.allow_missing_credentials = true;
}
