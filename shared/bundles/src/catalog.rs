//! Loading and checking bundles. Every problem is reported with the file, the field path and a
//! hint; the server refuses to start with a broken bundle.

use crate::adapters::{self, CallbackKeys};
use crate::driver::BundleDriver;
use crate::format::{Bundle, BundleShape, Step};
use crate::http::Transport;
use crate::template;
use executor_lifecycle::{Catalog, ModelDriver};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where secrets come from.
pub trait SecretSource: Send + Sync {
    /// A secret by name.
    fn get(&self, name: &str) -> Option<String>;
}

/// Secrets from the process environment.
pub struct EnvSecrets;

impl SecretSource for EnvSecrets {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// Secrets from a map (tests, files).
pub struct MapSecrets(pub HashMap<String, String>);

impl SecretSource for MapSecrets {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// How to load a catalog.
#[derive(Clone)]
pub struct CatalogOptions {
    /// Provider → base URL, overriding the bundles' (simulators, proxies).
    pub base_url_overrides: HashMap<String, String>,
    /// Secret source.
    pub secrets: Arc<dyn SecretSource>,
    /// Replicate's webhook signing secret.
    pub replicate_webhook_secret: Option<String>,
    /// fal's webhook public keys (base64url Ed25519).
    pub fal_public_keys: Vec<String>,
    /// Use placeholder credentials when a secret is missing (development with simulators).
    pub allow_missing_credentials: bool,
    /// A missing credential is not a catalog error: the bundle loads, and its executions fail
    /// with `pipeline_configuration` naming the credential (the Lambda functions: one
    /// provider's missing key must not stop the others). Off: a missing credential fails the
    /// load (bundle checks, replays, `executor dev` against real providers).
    pub missing_credentials_fail_executions: bool,
    /// Per-host breaker, bulkhead and retry settings of the outbound client.
    pub resilience: crate::resilience::ResilienceConfig,
    /// Provider → inflight capacity, overriding the bundles' `limits.capacity` (0: unlimited).
    pub capacity_overrides: HashMap<String, u32>,
    /// What media URLs (`file-handler` fetches, URL inputs checked at submit) may reach.
    pub media_policy: executor_lifecycle::netguard::OutboundPolicy,
    /// Where `file-handler` `rehost` stores provider outputs (None: rehost steps fail).
    pub media_store: Option<Arc<dyn crate::media::MediaStore>>,
    /// Platforms whose models run without a model file (`replicate`, `fal`): any
    /// `replicate/OWNER/NAME`, `replicate/VERSION` or `fal/ENDPOINT` id
    /// (`EXECUTOR_PASSTHROUGH=replicate,fal`).
    pub passthrough: Vec<String>,
    /// USD per second of predict time of a Replicate pass-through model
    /// (`EXECUTOR_PASSTHROUGH_REPLICATE_USD_PER_SECOND`; default: Nvidia A100 (80GB), $0.0014).
    pub passthrough_replicate_usd_per_second: f64,
    /// USD per output of a fal pass-through model (`EXECUTOR_PASSTHROUGH_FAL_USD_PER_OUTPUT`;
    /// default 0: fal's answers carry no price, set your endpoint's).
    pub passthrough_fal_usd_per_output: f64,
}

impl CatalogOptions {
    /// From the environment: `EXECUTOR_<PROVIDER>_BASE_URL`, `REPLICATE_WEBHOOK_SECRET`,
    /// `FAL_WEBHOOK_PUBLIC_KEYS` (comma-separated), secrets by name.
    pub fn from_env() -> CatalogOptions {
        let base_url_overrides = std::env::vars()
            .filter_map(|(k, v)| {
                Some((
                    k.strip_prefix("EXECUTOR_")?
                        .strip_suffix("_BASE_URL")?
                        .to_lowercase(),
                    v,
                ))
            })
            .collect();
        CatalogOptions {
            base_url_overrides,
            secrets: Arc::new(EnvSecrets),
            replicate_webhook_secret: std::env::var("REPLICATE_WEBHOOK_SECRET").ok(),
            fal_public_keys: std::env::var("FAL_WEBHOOK_PUBLIC_KEYS")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            allow_missing_credentials: false,
            missing_credentials_fail_executions: false,
            resilience: Default::default(),
            capacity_overrides: HashMap::new(),
            media_policy: Default::default(),
            media_store: None,
            passthrough: std::env::var("EXECUTOR_PASSTHROUGH")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            passthrough_replicate_usd_per_second: std::env::var(
                "EXECUTOR_PASSTHROUGH_REPLICATE_USD_PER_SECOND",
            )
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0014),
            passthrough_fal_usd_per_output: std::env::var(
                "EXECUTOR_PASSTHROUGH_FAL_USD_PER_OUTPUT",
            )
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        }
    }
}

/// A problem with a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleIssue {
    /// The file.
    pub file: PathBuf,
    /// The field path (`steps.submit[0].url`).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl std::fmt::Display for BundleIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: {} (hint: {})",
            self.file.display(),
            self.path,
            self.message,
            self.hint
        )
    }
}

/// Loading failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BundleError {
    /// The directory could not be read.
    #[error("bundles directory {0}: {1}")]
    Dir(String, String),
    /// Bundles are broken.
    #[error("{} broken bundle problem(s):\n{}", .0.len(), .0.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<BundleIssue>),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(String),
}

/// The loaded models.
pub struct BundleCatalog {
    models: BTreeMap<String, Arc<BundleDriver>>,
    providers: BTreeMap<String, crate::compose::LoadedProvider>,
    factory: Factory,
    /// Pass-through models built on first use.
    dynamic: std::sync::Mutex<BTreeMap<String, Arc<BundleDriver>>>,
}

/// What building a driver needs.
struct Factory {
    transport: Transport,
    media: crate::media::MediaClient,
    keys: CallbackKeys,
    opts: CatalogOptions,
}

impl Factory {
    fn driver(&self, file: &Path, mut bundle: Bundle) -> Result<BundleDriver, Vec<BundleIssue>> {
        let opts = &self.opts;
        let mut issues = Vec::new();
        let mut secrets = BTreeMap::new();
        let mut missing = Vec::new();
        for name in &bundle.credentials {
            match opts.secrets.get(name) {
                Some(v) => {
                    secrets.insert(name.clone(), v);
                }
                None if opts.allow_missing_credentials => {
                    secrets.insert(
                        name.clone(),
                        format!("sim-{}", name.to_lowercase().replace('_', "-")),
                    );
                }
                None if opts.missing_credentials_fail_executions => missing.push(name.clone()),
                None => issues.push(issue(
                    file,
                    "credentials",
                    format!("secret {name} is not set"),
                    format!("export {name}=... (or run executor dev with the simulators)"),
                )),
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let (Some(adapter), Ok(validator)) = (
            adapters::for_bundle(&bundle, &secrets),
            jsonschema::validator_for(&bundle.input_schema),
        ) else {
            return Err(vec![issue(
                file,
                "adapter",
                "no adapter or no valid input schema",
                "run executor bundle check",
            )]);
        };
        let base_url = opts
            .base_url_overrides
            .get(&bundle.provider)
            .cloned()
            .unwrap_or_else(|| bundle.base_url.clone());
        if let Some(c) = opts.capacity_overrides.get(&bundle.provider) {
            bundle.limits.capacity = (*c > 0).then_some(*c);
        }
        let driver = BundleDriver::new(
            bundle,
            adapter,
            self.transport.clone(),
            self.media.clone(),
            opts.media_store.clone(),
            base_url.trim_end_matches('/').to_string(),
            secrets,
            self.keys.clone(),
            validator,
        );
        Ok(driver.with_missing_credentials(missing))
    }
}

/// The model file of a pass-through model id (`replicate/OWNER/NAME`, `replicate/VERSION`,
/// `fal/ENDPOINT`), or `None` when the id is not one.
pub fn passthrough_model(id: &str, opts: &CatalogOptions) -> Option<serde_json::Value> {
    use serde_json::json;
    let (platform, rest) = id.split_once('/')?;
    if !opts.passthrough.iter().any(|p| p == platform) || rest.is_empty() {
        return None;
    }
    let safe = |s: &str| {
        !s.is_empty()
            && s.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            })
    };
    if !safe(rest) {
        return None;
    }
    let description =
        format!("{rest} on {platform}, by pass-through: the input is forwarded as it is");
    match platform {
        "replicate" => {
            let version = rest.len() == 64 && rest.chars().all(|c| c.is_ascii_hexdigit());
            let mut m = json!({
                "extends": "replicate",
                "id": id,
                "description": description,
                "input_schema": {"type": "object"},
                "pricing": {"unit": "per_second", "usd_per_second": opts.passthrough_replicate_usd_per_second},
            });
            if version {
                m["endpoint"] = json!("/v1/predictions");
                m["request"] = json!({
                    "version": rest,
                    "input": "{{ input }}",
                    "webhook": "{{ callback_url }}",
                    "webhook_events_filter": ["start", "completed"],
                });
            } else {
                let (owner, name) = rest.split_once('/')?;
                if name.contains('/') {
                    return None;
                }
                m["endpoint"] = json!(format!("/v1/models/{owner}/{name}/predictions"));
            }
            Some(m)
        }
        "fal" => {
            let app: Vec<&str> = rest.split('/').take(2).collect();
            if app.len() < 2 {
                return None;
            }
            Some(json!({
                "extends": "fal",
                "id": id,
                "description": description,
                "endpoint": format!("/{rest}"),
                "params": {"app": app.join("/")},
                "input_schema": {"type": "object"},
                "pricing": {"unit": "per_output", "usd_per_output": opts.passthrough_fal_usd_per_output},
            }))
        }
        _ => None,
    }
}

const ROOTS: [&str; 9] = [
    "model",
    "input",
    "secrets",
    "base_url",
    "execution",
    "job",
    "callback_url",
    "steps",
    "vars",
];

fn issue(
    file: &Path,
    path: impl Into<String>,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> BundleIssue {
    BundleIssue {
        file: file.to_path_buf(),
        path: path.into(),
        message: message.into(),
        hint: hint.into(),
    }
}

/// Names defined by enclosing `for-each` steps.
type Scope<'s> = &'s [String];

fn check_template_in(
    file: &Path,
    path: &str,
    s: &str,
    expr: bool,
    scope: Scope,
    out: &mut Vec<BundleIssue>,
) {
    if let Err(e) = template::check_syntax(s, expr) {
        out.push(issue(
            file,
            path,
            format!("bad template: {e}"),
            "templates use minijinja syntax: {{ input.prompt }}",
        ));
        return;
    }
    for root in template::referenced_roots(s, expr) {
        if !ROOTS.contains(&root.as_str())
            && !["none", "true", "false"].contains(&root.as_str())
            && !scope.contains(&root)
        {
            let mut available: Vec<String> = ROOTS.iter().map(|r| r.to_string()).collect();
            available.extend(scope.iter().cloned());
            out.push(issue(
                file,
                path,
                format!("reference to undefined variable `{root}`"),
                format!("available: {}", available.join(", ")),
            ));
        }
    }
}

fn check_json_templates(
    file: &Path,
    path: &str,
    v: &serde_json::Value,
    scope: Scope,
    out: &mut Vec<BundleIssue>,
) {
    match v {
        serde_json::Value::String(s) => {
            let t = s.trim();
            if t.starts_with("{{")
                && t.ends_with("}}")
                && t.matches("{{").count() == 1
                && t.matches("}}").count() > 1
            {
                out.push(issue(
                    file,
                    path,
                    "`}}` inside the expression ends it early: the value would render as text, not JSON",
                    "close nested dicts with `} }` instead of `}}`",
                ));
            }
            check_template_in(file, path, s, false, scope, out)
        }
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| check_json_templates(file, &format!("{path}[{i}]"), x, scope, out)),
        serde_json::Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| check_json_templates(file, &format!("{path}.{k}"), x, scope, out)),
        _ => {}
    }
}

fn step_id(step: &Step) -> Option<&str> {
    match step {
        Step::HttpRequest(h) => Some(&h.id),
        Step::TransformPayload(t) => Some(&t.id),
        Step::TransformImage(t) => Some(&t.id),
        Step::PublishEvent(p) => Some(&p.id),
        Step::ForEach(f) => Some(&f.id),
        Step::FileHandler(f) => Some(&f.id),
        Step::Conditional(_) | Step::StopExecution(_) => None,
    }
}

fn ids_within(steps: &[Step], out: &mut Vec<String>) {
    for s in steps {
        if let Some(id) = step_id(s) {
            out.push(id.to_string());
        }
        match s {
            Step::Conditional(c) => {
                ids_within(&c.then, out);
                ids_within(&c.otherwise, out);
            }
            Step::ForEach(f) => ids_within(&f.steps, out),
            _ => {}
        }
    }
}

fn check_steps(file: &Path, path: &str, steps: &[Step], out: &mut Vec<BundleIssue>) {
    check_steps_in(file, path, steps, &[], out)
}

fn check_steps_in(
    file: &Path,
    path: &str,
    steps: &[Step],
    scope: Scope,
    out: &mut Vec<BundleIssue>,
) {
    let t = |path: String, s: &str, expr: bool, out: &mut Vec<BundleIssue>| {
        check_template_in(file, &path, s, expr, scope, out)
    };
    for (i, step) in steps.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match step {
            Step::HttpRequest(h) => {
                t(format!("{p}.url"), &h.url, false, out);
                h.headers
                    .iter()
                    .for_each(|(k, v)| t(format!("{p}.headers.{k}"), v, false, out));
                h.query
                    .iter()
                    .for_each(|(k, v)| t(format!("{p}.query.{k}"), v, false, out));
                if let Some(j) = &h.json {
                    check_json_templates(file, &format!("{p}.json"), j, scope, out);
                }
                if let Some(m) = &h.multipart {
                    m.iter()
                        .for_each(|(k, v)| t(format!("{p}.multipart.{k}"), v, false, out));
                }
                if let Some(b) = &h.binary {
                    t(format!("{p}.binary.data"), &b.data, false, out);
                    if let Some(c) = &b.content_type {
                        t(format!("{p}.binary.content_type"), c, false, out);
                    }
                }
                let bodies = [h.json.is_some(), h.multipart.is_some(), h.binary.is_some()]
                    .iter()
                    .filter(|b| **b)
                    .count();
                if bodies > 1 {
                    out.push(issue(
                        file,
                        &p,
                        "more than one body (json, multipart, binary)",
                        "choose one body kind",
                    ));
                }
            }
            Step::TransformPayload(tp) => {
                check_json_templates(file, &format!("{p}.template"), &tp.template, scope, out)
            }
            Step::Conditional(c) => {
                t(format!("{p}.if"), &c.condition, true, out);
                check_steps_in(file, &format!("{p}.then"), &c.then, scope, out);
                check_steps_in(file, &format!("{p}.else"), &c.otherwise, scope, out);
            }
            Step::PublishEvent(pe) => {
                check_json_templates(file, &format!("{p}.data"), &pe.data, scope, out);
                if pe.event.trim().is_empty() {
                    out.push(issue(
                        file,
                        format!("{p}.event"),
                        "empty event name",
                        "use `progress` or a custom name",
                    ));
                }
            }
            Step::TransformImage(ti) => {
                t(format!("{p}.source"), &ti.source, false, out);
                if ti
                    .resize
                    .as_ref()
                    .is_some_and(|r| r.width == 0 || r.height == 0)
                {
                    out.push(issue(
                        file,
                        format!("{p}.resize"),
                        "resize box of zero size",
                        "width and height are pixels, at least 1",
                    ));
                }
            }
            Step::FileHandler(fh) => t(format!("{p}.url"), &fh.url, false, out),
            Step::ForEach(f) => {
                t(format!("{p}.items"), &f.items, true, out);
                if f.max_items == 0 {
                    out.push(issue(
                        file,
                        format!("{p}.max_items"),
                        "max_items is 0: the loop can never run",
                        "set the largest number of items the provider accepts",
                    ));
                }
                let mut inner: Vec<String> = scope.to_vec();
                inner.push(f.item.clone());
                inner.push("loop_index".into());
                check_steps_in(file, &format!("{p}.steps"), &f.steps, &inner, out);
                if let Some(c) = &f.collect {
                    let mut ids = Vec::new();
                    ids_within(&f.steps, &mut ids);
                    if !ids.contains(c) {
                        out.push(issue(
                            file,
                            format!("{p}.collect"),
                            format!("no step `{c}` inside the loop"),
                            format!("collect one of: {}", ids.join(", ")),
                        ));
                    }
                }
            }
            Step::StopExecution(s) => {
                if let Some(c) = &s.condition {
                    t(format!("{p}.if"), c, true, out);
                }
                t(format!("{p}.message"), &s.message, false, out);
                if let Some(c) = &s.error_class
                    && executor_lifecycle::ErrorClass::parse(c).is_none()
                {
                    out.push(issue(
                        file,
                        format!("{p}.error_class"),
                        format!("unknown error class `{c}`"),
                        "see the failure taxonomy in docs/bundles.md",
                    ));
                }
                if i + 1 < steps.len() && s.condition.is_none() {
                    out.push(issue(
                        file,
                        format!("{path}[{}]", i + 1),
                        "unreachable step after an unconditional stop-execution",
                        "remove it or give the stop an `if`",
                    ));
                }
            }
        }
    }
}

/// Parses and checks one bundle file.
pub fn check_file(file: &Path) -> Result<Bundle, Vec<BundleIssue>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![issue(
            file,
            "(file)",
            e.to_string(),
            "is the file readable?",
        )]
    })?;
    check_text(file, &text)
}

/// Parses and checks one bundle's text (`file` names it in messages). A model file
/// (`extends:`) is resolved over its provider file, found in a `providers` directory beside the
/// file or above it.
pub fn check_text(file: &Path, text: &str) -> Result<Bundle, Vec<BundleIssue>> {
    if let Some(name) = crate::compose::extends_of(text) {
        let Some(pdir) = crate::compose::find_providers_dir(file) else {
            return Err(vec![issue(
                file,
                "extends",
                format!("no provider file for `{name}` (no providers directory)"),
                format!("write bundles/providers/{name}.yaml"),
            )]);
        };
        let providers = load_providers(&pdir)?;
        return check_model(file, text, &providers);
    }
    let bundle: Bundle = serde_yaml_ng::from_str(text).map_err(|e| {
        let path = e
            .location()
            .map(|l| format!("line {} column {}", l.line(), l.column()))
            .unwrap_or_else(|| "(document)".into());
        vec![issue(
            file,
            path,
            e.to_string(),
            "compare with docs/bundle.schema.json; unknown fields are refused",
        )]
    })?;
    check_bundle(file, bundle)
}

/// Parses every provider file of a `providers` directory, by provider name.
pub fn load_providers(
    dir: &Path,
) -> Result<BTreeMap<String, crate::compose::LoadedProvider>, Vec<BundleIssue>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| vec![issue(dir, "(directory)", e.to_string(), "is it readable?")])?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut out = BTreeMap::new();
    let mut issues = Vec::new();
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                issues.push(issue(&f, "(file)", e.to_string(), "is the file readable?"));
                continue;
            }
        };
        match crate::compose::parse_providers(&f, &text) {
            Ok(ps) => {
                for p in ps {
                    out.insert(p.typed.provider.clone(), p);
                }
            }
            Err(mut i) => issues.append(&mut i),
        }
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

/// Resolves and checks a model file over the given provider files.
pub fn check_model(
    file: &Path,
    text: &str,
    providers: &BTreeMap<String, crate::compose::LoadedProvider>,
) -> Result<Bundle, Vec<BundleIssue>> {
    let value = crate::compose::resolve(file, text, providers)?;
    let bundle: Bundle = serde_json::from_value(value).map_err(|e| {
        vec![issue(
            file,
            "(resolved over its provider)",
            e.to_string(),
            "compare with docs/model.schema.json and the provider file",
        )]
    })?;
    check_bundle(file, bundle)
}

/// Checks a parsed bundle.
pub fn check_bundle(file: &Path, bundle: Bundle) -> Result<Bundle, Vec<BundleIssue>> {
    let mut out = Vec::new();
    let adapter = adapters::for_bundle(&bundle, &BTreeMap::new());
    for (i, r) in bundle.errors.iter().enumerate() {
        crate::compose::check_rule(file, &format!("errors[{i}]"), r, &mut out);
    }
    if bundle.adapter == "declared" {
        check_declared(file, &bundle, &mut out);
    }
    match &adapter {
        None => out.push(issue(
            file,
            "adapter",
            format!("unknown adapter `{}`", bundle.adapter),
            format!("known adapters: declared, {}", adapters::NAMES.join(", ")),
        )),
        Some(a) => {
            if bundle.shape == BundleShape::Callback && !a.supports_callbacks() {
                out.push(issue(
                    file,
                    "shape",
                    format!("adapter `{}` has no callback hooks", a.name()),
                    "use shape polling, or an adapter that validates callbacks",
                ));
            }
            if bundle.shape == BundleShape::Immediate && !a.supports_immediate() {
                out.push(issue(
                    file,
                    "shape",
                    format!("adapter `{}` has no immediate-result hook", a.name()),
                    "use shape polling",
                ));
            }
        }
    }
    let no_status = bundle.callback.as_ref().and_then(|c| c.no_status.as_ref());
    if let Some(url) = no_status {
        let trusted = bundle
            .interpret
            .as_ref()
            .and_then(|i| i.callback.as_ref())
            .is_some_and(|c| {
                c.trust_body && !matches!(c.verify, crate::declared::CallbackVerify::Unsigned)
            });
        if bundle.shape != BundleShape::Callback || !trusted {
            out.push(issue(
                file,
                "callback.no_status",
                "with no call to read a job, the callback is the only result",
                "use shape callback, with interpret.callback authenticated (scheme header or basic) and trust_body: true",
            ));
        }
        if !bundle.steps.poll.is_empty() {
            out.push(issue(
                file,
                "steps.poll",
                format!("poll steps contradict callback.no_status ({url})"),
                "remove the poll steps, or no_status",
            ));
        }
    }
    if bundle.shape != BundleShape::Immediate && bundle.steps.poll.is_empty() && no_status.is_none()
    {
        out.push(issue(
            file,
            "steps.poll",
            "a polling or callback bundle needs poll steps",
            "add the provider's status call",
        ));
    }
    if bundle.limits.job_retries > 3 {
        out.push(issue(
            file,
            "limits.job_retries",
            format!("{} job retries: at most 3", bundle.limits.job_retries),
            "lower `limits.job_retries` (each retry may be a billed job)",
        ));
    }
    if bundle.shape == BundleShape::Callback && bundle.callback.is_none() {
        out.push(issue(
            file,
            "callback",
            "a callback bundle needs callback.safety_poll_seconds",
            "add `callback: {safety_poll_seconds: 60}`",
        ));
    }
    if bundle.steps.submit.is_empty() {
        out.push(issue(
            file,
            "steps.submit",
            "no submit steps",
            "add the provider's create call",
        ));
    }
    check_steps(file, "steps.submit", &bundle.steps.submit, &mut out);
    check_steps(file, "steps.poll", &bundle.steps.poll, &mut out);
    check_steps(file, "steps.cancel", &bundle.steps.cancel, &mut out);
    check_steps(file, "steps.lookup", &bundle.steps.lookup, &mut out);
    match (&bundle.lookup, bundle.steps.lookup.is_empty()) {
        (Some(l), false) => {
            if let Err(e) = crate::template::check_syntax(&l.job_id, false) {
                out.push(issue(
                    file,
                    "lookup.job_id",
                    e.to_string(),
                    "a template, e.g. {{ steps.recent.body.id }}",
                ));
            }
        }
        (None, true) => {}
        (Some(_), true) => out.push(issue(
            file,
            "steps.lookup",
            "lookup.job_id without lookup steps",
            "add the provider's list call under steps.lookup",
        )),
        (None, false) => out.push(issue(
            file,
            "lookup",
            "lookup steps without lookup.job_id",
            "say which listed job is this execution's",
        )),
    }
    if let Err(e) = jsonschema::validator_for(&bundle.input_schema) {
        out.push(issue(
            file,
            "input_schema",
            format!("not a valid JSON Schema: {e}"),
            "see https://json-schema.org",
        ));
    }
    if out.is_empty() { Ok(bundle) } else { Err(out) }
}

/// What the `declared` adapter needs to read a provider's answers.
fn check_declared(file: &Path, bundle: &Bundle, out: &mut Vec<BundleIssue>) {
    let Some(i) = &bundle.interpret else {
        out.push(issue(
            file,
            "interpret",
            "adapter `declared` without `interpret`",
            "say where the job id, status and outputs are (see docs/bundles.md)",
        ));
        return;
    };
    if bundle.shape != BundleShape::Immediate {
        if i.job_id.is_none() {
            out.push(issue(
                file,
                "interpret.job_id",
                "a polling or callback model needs the job id's pointer",
                "e.g. job_id: /id",
            ));
        }
        // A callback-only provider's answer may have no status field (Deepgram's result is
        // success by its presence: `statuses: {"": succeeded}`).
        let no_status = bundle
            .callback
            .as_ref()
            .is_some_and(|c| c.no_status.is_some());
        if (i.status.is_none() && !no_status) || i.statuses.is_empty() {
            out.push(issue(
                file,
                "interpret.statuses",
                "a polling or callback model needs the status pointer and its values",
                "e.g. status: /status, statuses: {queued: pending, succeeded: succeeded}",
            ));
        }
        use crate::declared::JobState;
        for needed in [JobState::Succeeded, JobState::Failed] {
            if !i.statuses.values().any(|s| *s == needed) && i.failed_if_present.is_none() {
                out.push(issue(
                    file,
                    "interpret.statuses",
                    format!("no status value means {needed:?}"),
                    "map every status the provider documents",
                ));
            }
        }
    }
    if i.outputs.is_empty() {
        out.push(issue(
            file,
            "interpret.outputs",
            "no output rule: nothing could be returned",
            "e.g. outputs: [{kind: image, url: /url}]",
        ));
    }
    let pointers = i
        .outputs
        .iter()
        .flat_map(|o| {
            [
                &o.each,
                &o.url,
                &o.base64,
                &o.hex,
                &o.text,
                &o.json,
                &o.mime_type_at,
                &o.width,
                &o.height,
                &o.duration_seconds,
            ]
        })
        .chain([&i.job_id, &i.status, &i.failed_if_present])
        .flatten();
    for p in pointers {
        if !p.is_empty() && !p.starts_with('/') {
            out.push(issue(
                file,
                "interpret",
                format!("`{p}` is not a JSON pointer"),
                "pointers start with `/`: /data/0/url",
            ));
        }
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), BundleError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| BundleError::Dir(dir.display().to_string(), e.to_string()))?;
    for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if p.is_dir() {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string());
            if depth < 4 && name.as_deref() != Some("fixtures") {
                yaml_files(&p, out, depth + 1)?;
            }
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    Ok(())
}

/// The model and bundle files under a directory (recursively, without provider files and
/// fixtures), sorted.
pub fn bundle_files(dir: &Path) -> Result<Vec<PathBuf>, BundleError> {
    let mut files = Vec::new();
    yaml_files(dir, &mut files, 0)?;
    files.retain(|f| !crate::compose::is_provider_file(f));
    files.sort();
    Ok(files)
}

/// The provider files under a directory, sorted.
pub fn provider_files(dir: &Path) -> Result<Vec<PathBuf>, BundleError> {
    let mut files = Vec::new();
    yaml_files(dir, &mut files, 0)?;
    files.retain(|f| crate::compose::is_provider_file(f));
    files.sort();
    Ok(files)
}

impl BundleCatalog {
    /// Loads and checks every bundle in `dir`.
    pub fn load(dir: &Path, opts: CatalogOptions) -> Result<BundleCatalog, BundleError> {
        let mut sources = Vec::new();
        for file in provider_files(dir)?.into_iter().chain(bundle_files(dir)?) {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| BundleError::Dir(file.display().to_string(), e.to_string()))?;
            sources.push((file, text));
        }
        BundleCatalog::load_sources(sources, opts)
    }

    /// Loads and checks bundles given as (name, YAML text), e.g. embedded in a Lambda binary.
    pub fn load_sources(
        sources: Vec<(PathBuf, String)>,
        opts: CatalogOptions,
    ) -> Result<BundleCatalog, BundleError> {
        let transport = Transport::new(opts.resilience.clone()).map_err(BundleError::Http)?;
        let media = crate::media::MediaClient::new(opts.media_policy).map_err(BundleError::Http)?;
        let keys = CallbackKeys {
            replicate_webhook_secret: opts.replicate_webhook_secret.clone(),
            fal_public_keys: opts.fal_public_keys.clone(),
        };
        let mut issues = Vec::new();
        let mut models = BTreeMap::new();
        let (provider_sources, sources): (Vec<_>, Vec<_>) = sources
            .into_iter()
            .partition(|(f, _)| crate::compose::is_provider_file(f));
        let mut providers = BTreeMap::new();
        for (file, text) in provider_sources {
            match crate::compose::parse_providers(&file, &text) {
                Ok(ps) => {
                    for p in ps {
                        if let Some(prev) = providers.insert(p.typed.provider.clone(), p) {
                            issues.push(issue(
                                &file,
                                "provider",
                                format!(
                                    "provider `{}` is also defined in {}",
                                    prev.typed.provider,
                                    prev.file.display()
                                ),
                                "one provider, one file",
                            ));
                        }
                    }
                }
                Err(mut i) => issues.append(&mut i),
            }
        }
        let factory = Factory {
            transport,
            media,
            keys,
            opts,
        };
        for (file, text) in sources {
            let checked = if crate::compose::extends_of(&text).is_some() {
                check_model(&file, &text, &providers)
            } else {
                check_text(&file, &text)
            };
            let bundle = match checked {
                Ok(b) => b,
                Err(mut i) => {
                    issues.append(&mut i);
                    continue;
                }
            };
            if models.contains_key(&bundle.id) {
                issues.push(issue(
                    &file,
                    "id",
                    format!("duplicate model id {}", bundle.id),
                    "model ids must be unique",
                ));
                continue;
            }
            match factory.driver(&file, bundle) {
                Ok(d) => {
                    models.insert(d.bundle().id.clone(), Arc::new(d));
                }
                Err(mut i) => issues.append(&mut i),
            }
        }
        if !issues.is_empty() {
            return Err(BundleError::Invalid(issues));
        }
        for p in &factory.opts.passthrough {
            if !providers.contains_key(p) || !["replicate", "fal"].contains(&p.as_str()) {
                return Err(BundleError::Invalid(vec![issue(
                    Path::new("EXECUTOR_PASSTHROUGH"),
                    p.as_str(),
                    format!("no pass-through for `{p}`"),
                    "pass-through is for replicate and fal (with their provider files)",
                )]));
            }
        }
        Ok(BundleCatalog {
            models,
            providers,
            factory,
            dynamic: std::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// The drivers.
    pub fn drivers(&self) -> impl Iterator<Item = &Arc<BundleDriver>> {
        self.models.values()
    }

    /// (model, credential) for every credential a loaded bundle lacks (only with
    /// `missing_credentials_fail_executions`): those models' executions fail.
    pub fn missing_credentials(&self) -> Vec<(String, String)> {
        self.models
            .values()
            .flat_map(|d| {
                d.missing_credentials()
                    .iter()
                    .map(|c| (d.bundle().id.clone(), c.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl BundleCatalog {
    /// A pass-through model, built on first use from its id and the provider file.
    fn passthrough(&self, model: &str) -> Option<Arc<BundleDriver>> {
        let mut cache = self.dynamic.lock().ok()?;
        if let Some(d) = cache.get(model) {
            return Some(d.clone());
        }
        let value = passthrough_model(model, &self.factory.opts)?;
        let text = serde_yaml_ng::to_string(&value).ok()?;
        let file = PathBuf::from(format!("(pass-through {model})"));
        let bundle = check_model(&file, &text, &self.providers).ok()?;
        let d = Arc::new(self.factory.driver(&file, bundle).ok()?);
        if cache.len() < 10_000 {
            cache.insert(model.to_string(), d.clone());
        }
        Some(d)
    }
}

impl Catalog for BundleCatalog {
    fn get(&self, model: &str) -> Option<Arc<dyn ModelDriver>> {
        self.models
            .get(model)
            .cloned()
            .or_else(|| self.passthrough(model))
            .map(|d| d as Arc<dyn ModelDriver>)
    }

    fn list(&self) -> Vec<Arc<dyn ModelDriver>> {
        self.models
            .values()
            .map(|d| d.clone() as Arc<dyn ModelDriver>)
            .collect()
    }
}
