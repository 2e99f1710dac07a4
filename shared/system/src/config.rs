//! Every limit of the machine in one place: `executor.toml` (or `--config FILE`), overridden
//! by environment variables `EXECUTOR__SECTION__KEY=value` (e.g.
//! `EXECUTOR__HTTP__MAX_RETRIES=3`, `EXECUTOR__PROVIDERS__FAL__CAPACITY=5`). Defaults are
//! safe for production; `executor config` prints the effective configuration.

use anyhow::{Context, Result};
use executor_bundles::resilience::ResilienceConfig;
use executor_lifecycle::LifecycleConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Lifecycle timing, retries and delivery.
    pub lifecycle: LifecycleConfig,
    /// API limits.
    pub api: ApiSettings,
    /// Queue consumers and the reconciler.
    pub workers: WorkerSettings,
    /// Outbound HTTP: per-host breaker, bulkhead, retries.
    pub http: ResilienceConfig,
    /// Per provider: inflight capacity and base URL.
    pub providers: BTreeMap<String, ProviderSettings>,
}

/// API limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Largest request body (bytes).
    pub max_body_bytes: usize,
    /// Longest `Prefer: wait=N` honoured (seconds).
    pub max_wait_seconds: u64,
    /// Immediate executions run in the request path at once; beyond, they go async (202).
    pub inline_concurrency: usize,
    /// Longest submit timeout (seconds) an immediate model may have to run in the request
    /// path; longer ones answer 202 and run from the submit queue. 0: no bound.
    pub inline_max_seconds: u64,
    /// Requests per second per tenant (API key owner); 0 = no rate limit.
    pub rate_limit_per_second: u32,
    /// Burst a tenant may send above the steady rate.
    pub rate_limit_burst: u32,
    /// Largest file uploaded through the API (`POST /v1/files` multipart, the upload route).
    pub max_upload_bytes: usize,
    /// Largest file of a presigned upload (`POST /v1/files` with JSON).
    pub max_file_bytes: u64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        let d = executor_api::ApiConfig::default();
        ApiSettings {
            max_body_bytes: d.max_body_bytes,
            max_wait_seconds: d.max_wait_seconds,
            inline_concurrency: d.inline_concurrency,
            inline_max_seconds: d.inline_max_seconds,
            rate_limit_per_second: d.rate_limit_per_second,
            rate_limit_burst: d.rate_limit_burst,
            max_upload_bytes: d.max_upload_bytes,
            max_file_bytes: d.max_file_bytes,
        }
    }
}

impl From<&ApiSettings> for executor_api::ApiConfig {
    fn from(a: &ApiSettings) -> Self {
        executor_api::ApiConfig {
            max_body_bytes: a.max_body_bytes,
            max_wait_seconds: a.max_wait_seconds,
            inline_concurrency: a.inline_concurrency,
            inline_max_seconds: a.inline_max_seconds,
            rate_limit_per_second: a.rate_limit_per_second,
            rate_limit_burst: a.rate_limit_burst,
            max_upload_bytes: a.max_upload_bytes,
            max_file_bytes: a.max_file_bytes,
        }
    }
}

/// Queue consumers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Messages handled at once per queue.
    pub concurrency: usize,
    /// How often the reconciler runs (ms); 0 disables it.
    pub reconcile_every_ms: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            concurrency: 16,
            reconcile_every_ms: 5_000,
        }
    }
}

/// One provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderSettings {
    /// Inflight executions at once (0: unlimited); overrides the bundles' `limits.capacity`.
    pub capacity: Option<u32>,
    /// Base URL override (also `EXECUTOR_<PROVIDER>_BASE_URL`).
    pub base_url: Option<String>,
}

fn parse_scalar(v: &str) -> toml::Value {
    // A JSON array or table (`EXECUTOR__LIFECYCLE__BUDGETS='[{"tenant": ...}]'`).
    if v.trim_start().starts_with(['[', '{'])
        && let Ok(json) = serde_json::from_str::<serde_json::Value>(v)
        && let Ok(t) = toml::Value::try_from(json)
    {
        return t;
    }
    if let Ok(i) = v.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(f) = v.parse::<f64>() {
        toml::Value::Float(f)
    } else if let Ok(b) = v.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(v.to_string())
    }
}

impl Config {
    /// Reads `path` (if it exists; `required` makes a missing file an error), then applies
    /// `EXECUTOR__...` environment overrides.
    pub fn load(path: &Path, required: bool) -> Result<Config> {
        let mut doc = match std::fs::read_to_string(path) {
            Ok(text) => text
                .parse::<toml::Table>()
                .with_context(|| format!("{}: invalid TOML", path.display()))?,
            Err(_) if !required => toml::Table::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        for (key, value) in std::env::vars() {
            let Some(rest) = key.strip_prefix("EXECUTOR__") else {
                continue;
            };
            let parts: Vec<String> = rest.split("__").map(|p| p.to_lowercase()).collect();
            let mut table = &mut doc;
            for p in &parts[..parts.len().saturating_sub(1)] {
                let entry = table
                    .entry(p.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let Some(t) = entry.as_table_mut() else {
                    anyhow::bail!("{key}: {p} is not a section")
                };
                table = t;
            }
            if let Some(last) = parts.last() {
                table.insert(last.clone(), parse_scalar(&value));
            }
        }
        let config: Config = toml::Value::Table(doc).try_into().map_err(|e| {
            anyhow::anyhow!(
                "configuration ({} and EXECUTOR__* variables): {e}",
                path.display()
            )
        })?;
        for (alias, models) in &config.lifecycle.aliases {
            let mut seen = std::collections::BTreeSet::new();
            if models.is_empty()
                || models.len() > executor_lifecycle::fallback::MAX_FALLBACKS + 1
                || !models.iter().all(|m| seen.insert(&m.model))
            {
                anyhow::bail!(
                    "configuration ({} and EXECUTOR__* variables): lifecycle.aliases.{alias:?} must name 1 to {} models, each once",
                    path.display(),
                    executor_lifecycle::fallback::MAX_FALLBACKS + 1
                );
            }
        }
        executor_lifecycle::budget::validate_rules(&config.lifecycle.budgets).map_err(|e| {
            anyhow::anyhow!(
                "configuration ({} and EXECUTOR__* variables): lifecycle.{e}",
                path.display()
            )
        })?;
        Ok(config)
    }

    /// Applies the outbound HTTP settings and the per-provider capacity and base URL to a
    /// catalog's options.
    pub fn apply_to_catalog(&self, catalog: &mut executor_bundles::CatalogOptions) {
        catalog.resilience = self.http.clone();
        for (name, p) in &self.providers {
            if let Some(c) = p.capacity {
                catalog.capacity_overrides.insert(name.clone(), c);
            }
            if let Some(u) = &p.base_url {
                catalog.base_url_overrides.insert(name.clone(), u.clone());
            }
        }
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn budgets_come_from_toml_or_a_json_variable_and_bad_ones_are_refused() {
        let dir = std::env::temp_dir().join(format!("executor-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.toml");
        std::fs::write(
            &file,
            "[[lifecycle.budgets]]\ntenant = \"acme\"\nperiod = \"month\"\nlimit_usd = 500.0\n\n\
             [[lifecycle.budgets]]\ntenant = \"acme\"\nperiod = \"day\"\nlimit_usd = 20\nmodel = \"openai/sora-2\"\n",
        )
        .unwrap();
        let c = Config::load(&file, true).unwrap();
        assert_eq!(c.lifecycle.budgets.len(), 2);
        assert_eq!(
            c.lifecycle.budgets[1].model.as_deref(),
            Some("openai/sora-2")
        );
        assert_eq!(c.lifecycle.budgets[1].limit_usd_micros(), 20_000_000);
        // The form of EXECUTOR__LIFECYCLE__BUDGETS (the SAM parameter).
        let v = parse_scalar(r#"[{"tenant": "acme", "period": "total", "limit_usd": 1.5}]"#);
        let rules: Vec<executor_lifecycle::BudgetRule> = v.try_into().unwrap();
        assert_eq!(rules[0].period, executor_lifecycle::BudgetPeriod::Total);
        assert!(matches!(parse_scalar("[]"), toml::Value::Array(a) if a.is_empty()));
        // Two month budgets for one tenant: refused, naming the entry.
        std::fs::write(
            &file,
            "[[lifecycle.budgets]]\ntenant = \"acme\"\nperiod = \"month\"\nlimit_usd = 1.0\n\n\
             [[lifecycle.budgets]]\ntenant = \"acme\"\nperiod = \"month\"\nlimit_usd = 2.0\n",
        )
        .unwrap();
        let e = Config::load(&file, true).unwrap_err().to_string();
        assert!(e.contains("lifecycle.budgets[1]"), "{e}");
        std::fs::write(
            &file,
            "[[lifecycle.budgets]]\ntenant = \"acme\"\nperiod = \"week\"\nlimit_usd = 1.0\n",
        )
        .unwrap();
        let e = Config::load(&file, true).unwrap_err().to_string();
        assert!(e.contains("week"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_alias_step_may_map_the_input_to_its_model() {
        let dir = std::env::temp_dir().join(format!("executor-alias-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.toml");
        std::fs::write(
            &file,
            "[lifecycle.aliases]\n\"video/any\" = [\"runway/gen4-turbo\", \
             { model = \"bfl/flux-pro-1.1\", rename = { promptText = \"prompt\" }, input = { width = 1024 } }]\n",
        )
        .unwrap();
        let c = Config::load(&file, true).unwrap();
        let chain = &c.lifecycle.aliases["video/any"];
        assert_eq!(chain[0].model, "runway/gen4-turbo");
        assert!(chain[0].rename.is_empty());
        assert_eq!(chain[1].rename["promptText"], "prompt");
        assert_eq!(chain[1].input["width"], 1024);
        // A model named twice is refused.
        std::fs::write(
            &file,
            "[lifecycle.aliases]\n\"x\" = [\"a/b\", { model = \"a/b\" }]\n",
        )
        .unwrap();
        let e = Config::load(&file, true).unwrap_err().to_string();
        assert!(e.contains("lifecycle.aliases"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
