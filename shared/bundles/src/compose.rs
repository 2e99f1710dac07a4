//! Providers as data. A **provider file** (`bundles/providers/<provider>.yaml`) declares what
//! every model of a provider shares: base URL, credentials, auth headers (once), the default
//! create call, the poll / cancel / lookup steps, callback settings, the errors as data and
//! how answers are read. A **model file** `extends:` a provider and declares only what differs:
//! id, description, endpoint, input schema, request mapping (default: the input as is), output
//! reading, pricing, limits. Both resolve to one [`Bundle`], the form the engine runs (a file
//! without `extends:` is a complete bundle, as before).
//!
//! Merge rules: maps (`limits`, `polling`, `callback`, `interpret`, `params`) merge key by key,
//! the model's value winning; `errors` are the model's rules, then the provider's; `steps`
//! lists replace the provider's list of the same action; everything else the model sets
//! replaces the provider's. The provider's `base_url`, `credentials` and `auth` cannot be
//! overridden by a model (a conflicting override is an error naming both files).

use crate::catalog::BundleIssue;
use crate::format::{
    AmbiguousSubmit, BundleShape, CallbackSettings, ErrorFields, ErrorRule, Lookup, Polling, Step,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Auth sent with every call of the provider.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Header templates added to every `http-request` step (unless the step sets the same
    /// header, or says `auth: false`), e.g. `Authorization: "Bearer {{ secrets.KEY }}"`.
    pub headers: BTreeMap<String, String>,
}

/// A provider file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    /// The provider name (the limiter scope, the callback route, `EXECUTOR_<P>_BASE_URL`).
    pub provider: String,
    /// The adapter of the provider's models: a Rust adapter, or `declared` (read by
    /// `interpret`).
    pub adapter: String,
    /// One line about the provider.
    #[serde(default)]
    pub description: String,
    /// The provider's API documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<String>,
    /// The real base URL.
    pub base_url: String,
    /// Secrets the steps use, read from the environment.
    #[serde(default)]
    pub credentials: Vec<String>,
    /// Auth headers, declared once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// The models' default shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<BundleShape>,
    /// Default limits (any subset of the bundle's `limits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
    /// Default poll cadence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling: Option<Polling>,
    /// Default callback settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackSettings>,
    /// Default ambiguous-submit policy (`fail` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambiguous_submit: Option<AmbiguousSubmit>,
    /// How lookup answers name this execution's job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<Lookup>,
    /// Where error answers keep their code and message.
    #[serde(default)]
    pub error_fields: ErrorFields,
    /// The provider's errors as data.
    #[serde(default)]
    pub errors: Vec<ErrorRule>,
    /// How the `declared` adapter reads answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpret: Option<crate::declared::Interpret>,
    /// Where the provider documents that jobs cannot be canceled (no cancel steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cancel: Option<String>,
    /// The default create call (its templates may use `model.endpoint`, `model.name`,
    /// `model.params`); a model's `request` replaces the body of its `create` step.
    #[serde(default)]
    pub submit: Vec<Step>,
    /// Input schemas several of the provider's models share, by name: a model file names
    /// one with `input_schema: NAME` instead of repeating it (its chat API's, say).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input_schemas: BTreeMap<String, Value>,
    /// The poll, cancel and lookup steps.
    #[serde(default)]
    pub steps: ProviderSteps,
    /// One file, several providers of the same API shape (OpenAI-compatible hosts): each
    /// host is a provider of its own (its own name, base URL, key, limiter scope) that takes
    /// everything above and overrides what differs (`base_url`, `credentials`, `auth`,
    /// `error_fields`, `errors` (checked first), `limits`, `docs_url`, `description`, `submit`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, Value>,
}

/// What a host of a multi-host provider file may override.
const HOST_KEYS: [&str; 9] = [
    "base_url",
    "credentials",
    "auth",
    "error_fields",
    "errors",
    "limits",
    "docs_url",
    "description",
    "submit",
];

/// The steps a provider file shares.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSteps {
    /// Ask for the job's state.
    #[serde(default)]
    pub poll: Vec<Step>,
    /// Cancel the job.
    #[serde(default)]
    pub cancel: Vec<Step>,
    /// List recent jobs (after an ambiguous create).
    #[serde(default)]
    pub lookup: Vec<Step>,
}

/// A model file: what differs from its provider.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// The provider file this model extends (`bundles/providers/<extends>.yaml`).
    pub extends: String,
    /// Model id, `owner/name`.
    pub id: String,
    /// One line for humans.
    pub description: String,
    /// What the model makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<crate::format::Modality>,
    /// The provider's documentation of this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<String>,
    /// The provider's own model name (`{{ model.name }}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_model: Option<String>,
    /// The create call's path (`{{ model.endpoint }}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Constants at `model.params`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// The input field with the requested output duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_input: Option<String>,
    /// Another adapter than the provider's (one provider, several answer shapes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Another shape than the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<BundleShape>,
    /// Limits that differ (merged key by key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
    /// Poll cadence that differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling: Option<Value>,
    /// Callback settings that differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<Value>,
    /// Ambiguous-submit policy that differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambiguous_submit: Option<AmbiguousSubmit>,
    /// JSON Schema of the input, or the name of one of the provider file's
    /// `input_schemas`.
    pub input_schema: Value,
    /// The create call's body (templates), replacing the body of the provider's `create`
    /// step; absent: the provider's default (usually the input as is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// Reading the answers, merged key by key over the provider's `interpret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpret: Option<Value>,
    /// Where the provider documents that this model's jobs cannot be canceled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cancel: Option<String>,
    /// More error rules, checked before the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ErrorRule>>,
    /// How the cost is computed.
    pub pricing: Value,
    /// Typical usage figures for estimates where the input does not say (`audio_seconds: 600`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<std::collections::BTreeMap<String, f64>>,
    /// Steps replacing the provider's, action by action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<ModelSteps>,
}

/// Step lists a model replaces.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSteps {
    /// Create steps (instead of the provider's `submit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit: Option<Vec<Value>>,
    /// Poll steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<Vec<Value>>,
    /// Cancel steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<Vec<Value>>,
    /// Lookup steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<Vec<Value>>,
}

/// A parsed provider file.
#[derive(Debug, Clone)]
pub struct LoadedProvider {
    /// Its file.
    pub file: PathBuf,
    /// Its typed form.
    pub typed: ProviderFile,
    /// Its JSON form (for merging).
    pub value: Value,
}

fn issue(file: &Path, path: &str, message: String, hint: &str) -> BundleIssue {
    BundleIssue {
        file: file.to_path_buf(),
        path: path.to_string(),
        message,
        hint: hint.to_string(),
    }
}

fn yaml_issue(file: &Path, e: serde_yaml_ng::Error, what: &str) -> BundleIssue {
    let path = e
        .location()
        .map(|l| format!("line {} column {}", l.line(), l.column()))
        .unwrap_or_else(|| "(document)".into());
    issue(
        file,
        &path,
        e.to_string(),
        &format!("compare with docs/{what}.schema.json; unknown fields are refused"),
    )
}

/// Whether a path is a provider file (it sits in a `providers` directory).
pub fn is_provider_file(file: &Path) -> bool {
    file.parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "providers")
}

/// Parses and checks a provider file: one provider, or one per host of a multi-host file.
pub fn parse_providers(file: &Path, text: &str) -> Result<Vec<LoadedProvider>, Vec<BundleIssue>> {
    let typed: ProviderFile =
        serde_yaml_ng::from_str(text).map_err(|e| vec![yaml_issue(file, e, "provider")])?;
    if typed.hosts.is_empty() {
        return parse_provider(file, text).map(|p| vec![p]);
    }
    let value: Value =
        serde_yaml_ng::from_str(text).map_err(|e| vec![yaml_issue(file, e, "provider")])?;
    let mut out = Vec::new();
    let mut issues = Vec::new();
    for (host, over) in &typed.hosts {
        let Value::Object(o) = over else {
            issues.push(issue(
                file,
                &format!("hosts.{host}"),
                "a host is a map of overrides".into(),
                "e.g. {base_url: ..., credentials: [...]}",
            ));
            continue;
        };
        for k in o.keys() {
            if !HOST_KEYS.contains(&k.as_str()) {
                issues.push(issue(
                    file,
                    &format!("hosts.{host}.{k}"),
                    format!("a host cannot override `{k}`"),
                    &format!("hosts override: {}", HOST_KEYS.join(", ")),
                ));
            }
        }
        let mut v = value.clone();
        if let Value::Object(m) = &mut v {
            m.remove("hosts");
            m.insert("provider".into(), Value::String(host.clone()));
            for (k, x) in o {
                if k == "errors" {
                    let mut rules = x.as_array().cloned().unwrap_or_default();
                    rules.extend(
                        m.get("errors")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                    );
                    m.insert(k.clone(), Value::Array(rules));
                } else if k == "limits" && m.get("limits").is_some_and(Value::is_object) {
                    if let Some(l) = m.get_mut("limits") {
                        merge(l, x);
                    }
                } else {
                    m.insert(k.clone(), x.clone());
                }
            }
        }
        match serde_json::from_value::<ProviderFile>(v.clone()) {
            Ok(t) => {
                for (i, r) in t.errors.iter().enumerate() {
                    check_rule(file, &format!("hosts.{host}.errors[{i}]"), r, &mut issues);
                }
                out.push(LoadedProvider {
                    file: file.to_path_buf(),
                    typed: t,
                    value: v,
                })
            }
            Err(e) => issues.push(issue(
                file,
                &format!("hosts.{host}"),
                e.to_string(),
                "compare with docs/provider.schema.json",
            )),
        }
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

/// Parses and checks a single-provider file.
pub fn parse_provider(file: &Path, text: &str) -> Result<LoadedProvider, Vec<BundleIssue>> {
    let typed: ProviderFile =
        serde_yaml_ng::from_str(text).map_err(|e| vec![yaml_issue(file, e, "provider")])?;
    let value: Value =
        serde_yaml_ng::from_str(text).map_err(|e| vec![yaml_issue(file, e, "provider")])?;
    let mut out = Vec::new();
    let stem = file.file_stem().map(|s| s.to_string_lossy().to_string());
    if stem.as_deref() != Some(typed.provider.as_str()) {
        out.push(issue(
            file,
            "provider",
            format!(
                "provider `{}` in a file named {}",
                typed.provider,
                file.display()
            ),
            "name the file after the provider: providers/<provider>.yaml",
        ));
    }
    for (i, r) in typed.errors.iter().enumerate() {
        check_rule(file, &format!("errors[{i}]"), r, &mut out);
    }
    if out.is_empty() {
        Ok(LoadedProvider {
            file: file.to_path_buf(),
            typed,
            value,
        })
    } else {
        Err(out)
    }
}

/// Checks one error rule.
pub fn check_rule(file: &Path, path: &str, r: &ErrorRule, out: &mut Vec<BundleIssue>) {
    if executor_lifecycle::ErrorClass::parse(&r.class).is_none() {
        out.push(issue(
            file,
            &format!("{path}.class"),
            format!("unknown error class `{}`", r.class),
            "see the failure taxonomy in docs/bundles.md",
        ));
    }
    if r.not_created
        && (r.status.is_none()
            || r.code.is_some()
            || r.code_prefix.is_some()
            || r.message.is_some())
    {
        out.push(issue(
            file,
            &format!("{path}.not_created"),
            "not_created applies to a status alone".into(),
            "give the HTTP status the provider documents as creating nothing, and nothing else",
        ));
    }
}

/// Whether a model file's text extends a provider (has a top-level `extends:`).
pub fn extends_of(text: &str) -> Option<String> {
    let v: Value = serde_yaml_ng::from_str(text).ok()?;
    v.get("extends")?.as_str().map(str::to_string)
}

/// Key-by-key merge: `over` wins; maps merge recursively.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Adds the auth headers to every `http-request` step (recursively) that does not set them
/// and does not say `auth: false`.
fn inject_auth(steps: &mut Value, headers: &BTreeMap<String, String>) {
    let Value::Array(list) = steps else { return };
    for step in list {
        let Value::Object(s) = step else { continue };
        match s.get("kind").and_then(Value::as_str) {
            Some("http-request") if s.get("auth") != Some(&Value::Bool(false)) => {
                let h = s
                    .entry("headers")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(h) = h {
                    for (k, v) in headers {
                        if !h.keys().any(|x| x.eq_ignore_ascii_case(k)) {
                            h.insert(k.clone(), Value::String(v.clone()));
                        }
                    }
                }
            }
            Some("conditional") => {
                if let Some(t) = s.get_mut("then") {
                    inject_auth(t, headers);
                }
                if let Some(e) = s.get_mut("else") {
                    inject_auth(e, headers);
                }
            }
            Some("for-each") => {
                if let Some(t) = s.get_mut("steps") {
                    inject_auth(t, headers);
                }
            }
            _ => {}
        }
    }
}

/// Replaces the body of the `create` step (or the first `http-request`) with `request`.
fn apply_request(steps: &mut Value, request: &Value) -> bool {
    let Value::Array(list) = steps else {
        return false;
    };
    let http: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, s)| s["kind"] == "http-request")
        .map(|(i, _)| i)
        .collect();
    let at = http
        .iter()
        .copied()
        .find(|i| list[*i]["id"] == "create")
        .or(http.first().copied());
    let Some(i) = at else { return false };
    let Value::Object(step) = &mut list[i] else {
        return false;
    };
    let key = if step.contains_key("multipart") {
        "multipart"
    } else {
        "json"
    };
    step.insert(key.into(), request.clone());
    true
}

/// Resolves a model file over its provider into a complete bundle (as JSON, for the bundle
/// parser and checks).
pub fn resolve(
    file: &Path,
    text: &str,
    providers: &BTreeMap<String, LoadedProvider>,
) -> Result<Value, Vec<BundleIssue>> {
    let mut model: Value =
        serde_yaml_ng::from_str(text).map_err(|e| vec![yaml_issue(file, e, "model")])?;
    let extends = model["extends"].as_str().unwrap_or("").to_string();
    let mut out = Vec::new();
    if let Some(p) = providers.get(&extends) {
        for key in ["provider", "base_url", "credentials", "auth"] {
            if model.get(key).is_some() {
                out.push(issue(
                    file,
                    key,
                    format!(
                        "conflicting override: `{key}` belongs to the provider file {}",
                        p.file.display()
                    ),
                    "remove it here; a different host or key is a different provider file",
                ));
                if let Value::Object(m) = &mut model {
                    m.remove(key);
                }
            }
        }
    }
    let typed: ModelFile = match serde_json::from_value(model.clone()) {
        Ok(t) => t,
        Err(e) => {
            out.push(issue(
                file,
                "(document)",
                e.to_string(),
                "compare with docs/model.schema.json; unknown fields are refused",
            ));
            return Err(out);
        }
    };
    let Some(p) = providers.get(&typed.extends) else {
        let known: Vec<&str> = providers.keys().map(String::as_str).collect();
        return Err(vec![issue(
            file,
            "extends",
            format!("no provider file for `{}`", typed.extends),
            &format!(
                "write bundles/providers/{}.yaml, or extend one of: {}",
                typed.extends,
                known.join(", ")
            ),
        )]);
    };
    if typed.request.is_some() && typed.steps.as_ref().is_some_and(|s| s.submit.is_some()) {
        out.push(issue(
            file,
            "request",
            "conflicting override: `request` and `steps.submit` both define the create call".into(),
            "keep steps.submit and put the body in it, or keep request and drop steps.submit",
        ));
    }
    for (i, r) in typed.errors.iter().flatten().enumerate() {
        check_rule(file, &format!("errors[{i}]"), r, &mut out);
    }
    let pv = &p.value;
    let mut b = Map::new();
    b.insert("id".into(), model["id"].clone());
    b.insert("provider".into(), pv["provider"].clone());
    b.insert(
        "adapter".into(),
        model.get("adapter").unwrap_or(&pv["adapter"]).clone(),
    );
    let shape = model
        .get("shape")
        .or(pv.get("shape"))
        .cloned()
        .unwrap_or(Value::String("immediate".into()));
    b.insert("shape".into(), shape);
    b.insert("description".into(), model["description"].clone());
    b.insert("base_url".into(), pv["base_url"].clone());
    b.insert(
        "credentials".into(),
        pv.get("credentials")
            .cloned()
            .unwrap_or(Value::Array(vec![])),
    );
    for key in ["limits", "polling", "callback", "interpret", "params"] {
        let mut v = pv.get(key).cloned().unwrap_or(Value::Null);
        if let Some(m) = model.get(key) {
            if v.is_null() {
                v = m.clone();
            } else {
                merge(&mut v, m);
            }
        }
        if !v.is_null() {
            b.insert(key.into(), v);
        }
    }
    for key in [
        "ambiguous_submit",
        "lookup",
        "error_fields",
        "docs_url",
        "no_cancel",
    ] {
        if let Some(v) = model.get(key).or(pv.get(key)) {
            b.insert(key.into(), v.clone());
        }
    }
    for key in [
        "modality",
        "provider_model",
        "endpoint",
        "duration_input",
        "input_schema",
        "pricing",
        "estimate",
    ] {
        if let Some(v) = model.get(key) {
            b.insert(key.into(), v.clone());
        }
    }
    // `input_schema: NAME`: one of the provider file's shared schemas.
    if let Some(name) = model.get("input_schema").and_then(Value::as_str) {
        match pv.get("input_schemas").and_then(|s| s.get(name)) {
            Some(schema) => {
                b.insert("input_schema".into(), schema.clone());
            }
            None => {
                let known: Vec<String> = pv
                    .get("input_schemas")
                    .and_then(Value::as_object)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                out.push(issue(
                    file,
                    "input_schema",
                    format!(
                        "input_schema names `{name}`, which the provider file {} does not declare",
                        p.file.display()
                    ),
                    &if known.is_empty() {
                        "write the schema here, or add it to the provider file's input_schemas"
                            .to_string()
                    } else {
                        format!("name one of: {}", known.join(", "))
                    },
                ));
            }
        }
    }
    let mut errors: Vec<Value> = model
        .get("errors")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    errors.extend(
        pv.get("errors")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    );
    if !errors.is_empty() {
        b.insert("errors".into(), Value::Array(errors));
    }
    let ms = model.get("steps").cloned().unwrap_or(Value::Null);
    let ps = pv.get("steps").cloned().unwrap_or(Value::Null);
    let mut steps = Map::new();
    let mut submit = ms
        .get("submit")
        .cloned()
        .unwrap_or_else(|| pv.get("submit").cloned().unwrap_or(Value::Array(vec![])));
    if let Some(r) = &typed.request
        && !apply_request(&mut submit, r)
    {
        out.push(issue(
            file,
            "request",
            format!(
                "the provider file {} has no create call whose body a request could replace",
                p.file.display()
            ),
            "give the provider file a `submit` http-request step (id: create)",
        ));
    }
    steps.insert("submit".into(), submit);
    for action in ["poll", "cancel", "lookup"] {
        if let Some(v) = ms.get(action).or(ps.get(action)) {
            steps.insert(action.into(), v.clone());
        }
    }
    if typed.endpoint.is_some()
        && !Value::Object(steps.clone())
            .to_string()
            .contains("model.endpoint")
    {
        out.push(issue(
            file,
            "endpoint",
            "the endpoint is not used: no step refers to `model.endpoint`".into(),
            "use {{ model.endpoint }} in the create call's url, or drop the endpoint",
        ));
    }
    if let Some(auth) = &p.typed.auth {
        for v in steps.values_mut() {
            inject_auth(v, &auth.headers);
        }
    }
    b.insert("steps".into(), Value::Object(steps));
    if out.is_empty() {
        Ok(Value::Object(b))
    } else {
        Err(out)
    }
}

/// The provider files a model file may extend, found next to it: the `providers` directory in
/// the file's directory or the nearest of its ancestors (for checking one model file alone).
pub fn find_providers_dir(model_file: &Path) -> Option<PathBuf> {
    let mut dir = model_file.parent();
    while let Some(d) = dir {
        let candidate = d.join("providers");
        if candidate.is_dir() {
            return Some(candidate);
        }
        dir = d.parent();
    }
    None
}

/// The JSON Schemas of the provider and model files.
pub fn json_schemas() -> (Value, Value) {
    (
        serde_json::to_value(schemars::schema_for!(ProviderFile)).unwrap_or(Value::Null),
        serde_json::to_value(schemars::schema_for!(ModelFile)).unwrap_or(Value::Null),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const PROVIDER: &str = r#"
provider: acme
adapter: declared
base_url: https://api.acme.test
credentials: [ACME_KEY]
auth: {headers: {Authorization: "Bearer {{ secrets.ACME_KEY }}"}}
shape: polling
limits: {max_duration_seconds: 600, capacity: 4}
polling: {initial_delay_ms: 1000, max_delay_ms: 5000, multiplier: 1.5}
errors: [{status: 429, class: rate_limited}]
interpret:
  job_id: /id
  status: /status
  statuses: {queued: pending, done: succeeded}
  outputs: [{kind: image, url: /url}]
submit:
  - kind: http-request
    id: create
    method: POST
    url: "{{ base_url }}{{ model.endpoint }}"
    json: "{{ input }}"
steps:
  poll:
    - {kind: http-request, id: get, method: GET, url: "{{ base_url }}/v1/jobs/{{ job.id }}"}
input_schemas:
  prompt_only: {type: object, required: [prompt], properties: {prompt: {type: string}}}
"#;

    fn providers() -> BTreeMap<String, LoadedProvider> {
        let p = parse_provider(Path::new("providers/acme.yaml"), PROVIDER)
            .unwrap_or_else(|e| panic!("{e:?}"));
        BTreeMap::from([("acme".to_string(), p)])
    }

    #[test]
    fn a_model_file_resolves_over_its_provider() {
        let model = r#"
extends: acme
id: acme/one
description: One.
endpoint: /v1/one
limits: {max_duration_seconds: 60}
interpret: {outputs: [{kind: video, url: /video}]}
errors: [{status: 400, code: nsfw, class: content_policy}]
input_schema: {type: object}
pricing: {unit: per_output, usd_per_output: 0.01}
"#;
        let b = resolve(Path::new("models/acme/one.yaml"), model, &providers())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(b["limits"]["max_duration_seconds"], 60);
        assert_eq!(b["limits"]["capacity"], 4, "provider limits kept");
        assert_eq!(b["interpret"]["job_id"], "/id");
        assert_eq!(
            b["interpret"]["outputs"][0]["kind"], "video",
            "lists replace"
        );
        assert_eq!(b["errors"][0]["code"], "nsfw", "the model's rules first");
        assert_eq!(b["errors"][1]["status"], 429);
        assert_eq!(
            b["steps"]["poll"][0]["headers"]["Authorization"], "Bearer {{ secrets.ACME_KEY }}",
            "auth declared once, sent on every call"
        );
        let bundle: crate::format::Bundle =
            serde_json::from_value(b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bundle.endpoint.as_deref(), Some("/v1/one"));
    }

    #[test]
    fn conflicts_and_missing_providers_are_named() {
        let bad = r#"
extends: acme
id: acme/two
description: Two.
base_url: https://elsewhere
endpoint: /v1/two
request: {prompt: "{{ input.prompt }}"}
steps: {submit: []}
input_schema: {type: object}
pricing: {unit: per_output, usd_per_output: 0.01}
"#;
        let issues = resolve(Path::new("m.yaml"), bad, &providers()).unwrap_err();
        let text = format!("{issues:?}");
        assert!(
            text.contains("`base_url` belongs to the provider file"),
            "{text}"
        );
        assert!(text.contains("`request` and `steps.submit`"), "{text}");
        let orphan = bad
            .replace("extends: acme", "extends: nobody")
            .replace("base_url: https://elsewhere\n", "");
        let issues = resolve(Path::new("m.yaml"), &orphan, &providers()).unwrap_err();
        assert!(issues[0].message.contains("no provider file for `nobody`"));
        assert!(issues[0].hint.contains("acme"));
        let unknown =
            "extends: acme\nid: a/b\ndescription: x\ninput_schema: {}\npricing: {}\nbogus: 1\n";
        let issues = resolve(Path::new("m.yaml"), unknown, &providers()).unwrap_err();
        assert!(issues[0].message.contains("bogus"), "{issues:?}");
    }

    #[test]
    fn a_model_names_a_schema_its_provider_shares() {
        let model = "extends: acme\nid: acme/three\ndescription: x\ninput_schema: prompt_only\n\
                     pricing: {unit: per_output, usd_per_output: 0.01}\n";
        let b =
            resolve(Path::new("m.yaml"), model, &providers()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(b["input_schema"]["required"][0], "prompt");
        let unknown = model.replace("prompt_only", "chat");
        let issues = resolve(Path::new("m.yaml"), &unknown, &providers()).unwrap_err();
        assert_eq!(issues[0].path, "input_schema", "{issues:?}");
        assert!(issues[0].message.contains("`chat`"), "{issues:?}");
        assert!(issues[0].hint.contains("prompt_only"), "{issues:?}");
    }
}
