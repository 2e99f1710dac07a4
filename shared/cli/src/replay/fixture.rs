//! The fixture format (`docs/fixtures.md`): one execution of one bundle as its provider
//! conversation (interactions, callbacks) and the normalized outcome expected of it; how an
//! execution view is projected onto that outcome, and the files fixtures live in.

use anyhow::{Context, Result, bail};
use executor_bundles::Bundle;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A replay fixture: one execution of one bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// The model id of the bundle.
    pub bundle: String,
    /// The case name (the file name without extension, by convention).
    pub name: String,
    /// What the case shows.
    #[serde(default)]
    pub description: String,
    /// Where the interactions came from (`simulator`, `provider`, or `edited: ...`).
    #[serde(default)]
    pub source: String,
    /// The execution input.
    pub input: Value,
    /// Provider HTTP exchanges, in order.
    pub interactions: Vec<Interaction>,
    /// Provider callbacks, each after an interaction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callbacks: Vec<Callback>,
    /// The execution's own time limit, as a create may ask (`max_duration_seconds`): a case
    /// that ends at its deadline (a callback that never comes) sets a short one, since replay
    /// scales waits but not deadlines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_seconds: Option<u64>,
    /// The expected normalized outcome.
    pub expect: Expect,
}

/// One HTTP exchange with the provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interaction {
    /// The request (matched on method and path).
    pub request: RecordedRequest,
    /// The answer.
    pub response: RecordedResponse,
}

/// A request as recorded (no headers: they carry credentials).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Path below the provider's base URL.
    pub path: String,
    /// Query parameters (informational).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// JSON body, or a note of the body kind (informational).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub body: Value,
}

/// A response as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedResponse {
    /// Status.
    pub status: u16,
    /// Headers (lower-case names).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (or a text body as a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// A binary body, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

/// A provider callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    /// Sent once this many interactions have been answered (1 = after the first).
    pub after: usize,
    /// Headers (signature headers are computed again at replay).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Value,
}

/// The normalized outcome a fixture expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `succeeded`, `failed`, `canceled`, ...
    pub outcome: String,
    /// The error class of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    /// The input field a validation error names (a JSON pointer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Outputs (kind, mime type, dimensions, duration, url; inline data as its length).
    #[serde(default)]
    pub outputs: Vec<Value>,
    /// Usage figures.
    #[serde(default)]
    pub usage: Value,
    /// Provider cost in micro-dollars.
    pub cost_usd_micros: i64,
}

/// The comparable projection of an execution view.
pub fn project(view: &Value) -> Expect {
    let outputs = view["outputs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    let mut p = serde_json::Map::new();
                    for k in [
                        "kind",
                        "mime_type",
                        "width",
                        "height",
                        "duration_seconds",
                        "url",
                    ] {
                        if !o[k].is_null() {
                            p.insert(k.into(), o[k].clone());
                        }
                    }
                    // Media stored at ingestion: its name is the SHA-256 of the bytes (the
                    // host and execution id of the URL differ on every run).
                    if let Some(name) = o["url"]
                        .as_str()
                        .and_then(|u| u.split_once("/v1/media/"))
                        .and_then(|(_, rest)| rest.rsplit('/').next())
                    {
                        p.remove("url");
                        p.insert("stored".into(), json!(name));
                    }
                    if let Some(d) = o["data"].as_str() {
                        p.insert("data_length".into(), json!(d.len()));
                    } else if !o["data"].is_null() {
                        p.insert("data".into(), o["data"].clone());
                    }
                    Value::Object(p)
                })
                .collect()
        })
        .unwrap_or_default();
    Expect {
        outcome: view["outcome"]
            .as_str()
            .unwrap_or(view["status"].as_str().unwrap_or(""))
            .to_string(),
        error_class: view["error"]["class"].as_str().map(str::to_string),
        field: view["error"]["field"].as_str().map(str::to_string),
        outputs,
        usage: view["usage"].clone(),
        cost_usd_micros: view["cost"]["provider_usd_micros"].as_i64().unwrap_or(0),
    }
}

/// Reads a fixture file.
pub fn read_fixture(path: &Path) -> Result<Fixture> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("{}: not a fixture", path.display()))
}

/// The fixture files under a directory (recursively), sorted.
pub fn fixture_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("{}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The bundles of a directory, by model id.
pub fn bundles_by_id(dir: &Path) -> Result<BTreeMap<String, (PathBuf, Bundle)>> {
    let mut out = BTreeMap::new();
    for f in executor_bundles::catalog::bundle_files(dir)? {
        match executor_bundles::catalog::check_file(&f) {
            Ok(b) => {
                out.insert(b.id.clone(), (f, b));
            }
            Err(issues) => bail!(
                "{}",
                issues
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }
    Ok(out)
}

/// A line diff of two outcomes (YAML).
pub fn diff(expected: &Expect, actual: &Expect) -> String {
    let a = serde_yaml_ng::to_string(expected).unwrap_or_default();
    let b = serde_yaml_ng::to_string(actual).unwrap_or_default();
    let mut out = String::from("--- expected\n+++ actual\n");
    for change in similar::TextDiff::from_lines(&a, &b).iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => "-",
            similar::ChangeTag::Insert => "+",
            similar::ChangeTag::Equal => " ",
        };
        out.push_str(&format!("{sign}{change}"));
    }
    out
}

/// Rewrites a fixture file's expectation with an actual outcome (`bundle test --bless`).
pub fn bless(file: &Path, actual: &Expect) -> Result<()> {
    let mut f = read_fixture(file)?;
    f.expect = actual.clone();
    let text = std::fs::read_to_string(file)?;
    let header: String = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(file, format!("{header}{}", serde_yaml_ng::to_string(&f)?))?;
    Ok(())
}

/// Writes a fixture as YAML under `dir/<bundle file stem>/<name>.yaml`.
pub fn write_fixture(dir: &Path, bundle_file: &Path, fixture: &Fixture) -> Result<PathBuf> {
    let stem = bundle_file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "bundle".into());
    let out = dir.join(stem).join(format!("{}.yaml", fixture.name));
    if let Some(p) = out.parent() {
        std::fs::create_dir_all(p)?;
    }
    let text = format!(
        "# Replay fixture (docs/fixtures.md). Replay: executor bundle test {}\n{}",
        bundle_file.display(),
        serde_yaml_ng::to_string(fixture)?
    );
    std::fs::write(&out, text)?;
    Ok(out)
}

/// The fixtures of one bundle: `dir/<bundle file stem>/`.
pub fn fixtures_of(dir: &Path, bundle_file: &Path) -> PathBuf {
    dir.join(
        bundle_file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default(),
    )
}
