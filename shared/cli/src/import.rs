//! `executor bundle import` and `executor bundle scaffold`: a model file drafted from a
//! published OpenAPI schema — a Replicate model's (its version's `openapi_schema`), a fal
//! endpoint's, or any provider's operation — with the input schema, defaults, the endpoint, and
//! a pricing stub to confirm. Offline: the schema is read from a file or stdin.

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

/// Resolves a local `$ref` (`#/components/schemas/X`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with("#/") => doc.pointer(&r[1..]).unwrap_or(v),
        _ => v,
    }
}

/// A JSON Schema property cleaned for a bundle: local refs and one-element `allOf`s inlined,
/// OpenAPI-only keys dropped, media URLs marked `x-media`.
fn clean(doc: &Value, name: &str, prop: &Value, depth: usize) -> Value {
    let mut p = resolve(doc, prop).clone();
    if let Some(all) = p.get("allOf").and_then(Value::as_array).cloned()
        && all.len() == 1
    {
        let inner = clean(doc, name, &all[0], depth + 1);
        if let (Value::Object(m), Value::Object(i)) = (&mut p, inner) {
            m.remove("allOf");
            for (k, v) in i {
                m.entry(k).or_insert(v);
            }
        }
    }
    if let Value::Object(m) = &mut p {
        for k in [
            "x-order",
            "title",
            "nullable",
            "x-fal-order-properties",
            "examples",
            "example",
        ] {
            m.remove(k);
        }
        if let Some(items) = m.get("items").cloned()
            && depth < 4
        {
            m.insert("items".into(), clean(doc, name, &items, depth + 1));
        }
        if let Some(Value::Object(props)) = m.get("properties").cloned()
            && depth < 4
        {
            let cleaned: Map<String, Value> = props
                .iter()
                .map(|(k, v)| (k.clone(), clean(doc, k, v, depth + 1)))
                .collect();
            m.insert("properties".into(), Value::Object(cleaned));
        }
        let is_uri = m.get("format").and_then(Value::as_str) == Some("uri");
        let lower = name.to_ascii_lowercase();
        let kind = ["image", "video", "audio"]
            .into_iter()
            .find(|k| lower.contains(k) || (*k == "image" && lower.contains("mask")));
        if is_uri && let Some(k) = kind {
            m.insert("x-media".into(), json!({"kind": k}));
        }
    }
    p
}

/// The input schema of an object schema.
pub fn input_schema(doc: &Value, schema: &Value) -> Value {
    let s = resolve(doc, schema);
    let props: Map<String, Value> = s["properties"]
        .as_object()
        .map(|p| {
            let mut items: Vec<(&String, &Value)> = p.iter().collect();
            // Replicate orders inputs by `x-order`; keep that order.
            items.sort_by_key(|(_, v)| resolve(doc, v)["x-order"].as_i64().unwrap_or(i64::MAX));
            items
                .into_iter()
                .map(|(k, v)| (k.clone(), clean(doc, k, v, 0)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = json!({"type": "object", "additionalProperties": false, "properties": props});
    if let Some(r) = s
        .get("required")
        .filter(|r| r.as_array().is_some_and(|a| !a.is_empty()))
    {
        out["required"] = r.clone();
    }
    out
}

/// What an output schema suggests the model makes.
fn modality_of(doc: &Value, output: Option<&Value>, fallback: &str) -> String {
    let text = output
        .map(|o| resolve(doc, o).to_string().to_ascii_lowercase())
        .unwrap_or_default();
    let all = format!("{text} {}", fallback.to_ascii_lowercase());
    for (needle, m) in [
        ("video", "video"),
        ("audio", "speech"),
        ("speech", "speech"),
        ("transcri", "transcription"),
        ("glb", "3d"),
        ("mesh", "3d"),
        ("image", "image"),
        ("uri", "image"),
    ] {
        if all.contains(needle) {
            return m.to_string();
        }
    }
    "text".to_string()
}

/// A model file (YAML text) from its parts.
#[allow(clippy::too_many_arguments)] // the fields of the file, named at each call
fn model_file(
    extends: &str,
    id: &str,
    description: &str,
    modality: &str,
    endpoint: &str,
    params: Option<Value>,
    schema: &Value,
    source: &str,
) -> Result<String> {
    let mut doc = Map::new();
    doc.insert("extends".into(), json!(extends));
    doc.insert("id".into(), json!(id));
    doc.insert("description".into(), json!(description));
    doc.insert("modality".into(), json!(modality));
    doc.insert("endpoint".into(), json!(endpoint));
    if let Some(p) = params {
        doc.insert("params".into(), p);
    }
    doc.insert("input_schema".into(), schema.clone());
    doc.insert(
        "pricing".into(),
        json!({"unit": "per_output", "usd_per_output": 0.0}),
    );
    let yaml = serde_yaml_ng::to_string(&Value::Object(doc))?;
    Ok(format!(
        "# yaml-language-server: $schema=../docs/model.schema.json\n# Drafted by `executor bundle import` from {source}.\n# UNCONFIRMED: set the pricing from the provider's price page, check the input schema,\n# then write fixtures (docs/fixtures.md) and run `executor bundle conformance {id}`.\n{yaml}"
    ))
}

/// A Replicate model's schema document: a model (`latest_version.openapi_schema`), a version
/// (`openapi_schema`), or the OpenAPI document itself.
fn replicate_openapi(v: &Value) -> &Value {
    if let Some(s) = v.pointer("/latest_version/openapi_schema") {
        s
    } else if let Some(s) = v.get("openapi_schema") {
        s
    } else {
        v
    }
}

/// `executor bundle import replicate OWNER/NAME` from the model's published schema.
pub fn import_replicate(model: &str, schema_doc: &Value) -> Result<String> {
    let Some((owner, name)) = model.split_once('/') else {
        bail!("{model}: expected OWNER/NAME (e.g. black-forest-labs/flux-schnell)");
    };
    let doc = replicate_openapi(schema_doc);
    let input = doc.pointer("/components/schemas/Input").context(
        "the schema has no components.schemas.Input (is this a Replicate model or version JSON?)",
    )?;
    let description = schema_doc["description"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{model} on Replicate."));
    model_file(
        "replicate",
        model,
        &description,
        &modality_of(doc, doc.pointer("/components/schemas/Output"), name),
        &format!("/v1/models/{owner}/{name}/predictions"),
        None,
        &input_schema(doc, input),
        &format!("Replicate's OpenAPI schema of {model}"),
    )
}

/// The request-body schema of an OpenAPI operation (`operationId`, or `METHOD /path`).
fn operation<'a>(doc: &'a Value, op: &str) -> Result<(String, &'a Value, &'a Value)> {
    let paths = doc["paths"]
        .as_object()
        .context("not an OpenAPI document (no paths)")?;
    let (want_method, want_path) = match op.split_once(' ') {
        Some((m, p)) => (Some(m.to_ascii_lowercase()), Some(p)),
        None => (None, None),
    };
    for (path, item) in paths {
        for (method, o) in item.as_object().into_iter().flatten() {
            let hit = match (&want_method, want_path) {
                (Some(m), Some(p)) => m == method && p == path,
                _ => o["operationId"].as_str() == Some(op),
            };
            if hit {
                let content = &o["requestBody"]["content"];
                let schema = ["application/json", "multipart/form-data"]
                    .iter()
                    .find_map(|ct| content.get(*ct).map(|c| &c["schema"]))
                    .with_context(|| format!("{op}: no JSON or multipart request body"))?;
                let output = &o["responses"]["200"]["content"];
                return Ok((path.clone(), schema, output));
            }
        }
    }
    bail!("{op}: no such operation (give an operationId or `POST /path`)")
}

/// `executor bundle import fal ENDPOINT` from the endpoint's OpenAPI document.
pub fn import_fal(endpoint: &str, doc: &Value) -> Result<String> {
    let path = format!("/{}", endpoint.trim_start_matches('/'));
    let (path, schema, output) = operation(doc, &format!("POST {path}")).or_else(|_| {
        // fal's documents name the queue submit operation by the endpoint path alone.
        let first = doc["paths"]
            .as_object()
            .and_then(|p| p.iter().find(|(_, i)| i.get("post").is_some()))
            .map(|(k, _)| k.clone())
            .context("no POST operation in the document")?;
        operation(doc, &format!("POST {first}"))
    })?;
    let app: Vec<&str> = endpoint
        .trim_start_matches('/')
        .split('/')
        .take(2)
        .collect();
    model_file(
        "fal",
        endpoint.trim_start_matches('/'),
        &format!(
            "{} on fal.ai's queue API.",
            endpoint.trim_start_matches('/')
        ),
        &modality_of(doc, Some(output), endpoint),
        &path,
        Some(json!({"app": app.join("/")})),
        &input_schema(doc, schema),
        &format!("fal's OpenAPI document of {endpoint}"),
    )
}

/// `executor bundle scaffold --provider P --from-openapi FILE OPERATION`.
pub fn scaffold(provider: &str, doc: &Value, op: &str) -> Result<String> {
    let (path, schema, output) = operation(doc, op)?;
    let name = op
        .rsplit(['/', ' '])
        .next()
        .unwrap_or(op)
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_ascii_lowercase()
        .replace('_', "-");
    let description = doc["info"]["title"]
        .as_str()
        .map(|t| format!("{op} of {t}."))
        .unwrap_or_else(|| format!("{op}."));
    model_file(
        provider,
        &format!("{provider}/{name}"),
        &description,
        &modality_of(doc, Some(output), &path),
        &path,
        None,
        &input_schema(doc, schema),
        &format!("the OpenAPI operation {op}"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_replicate_version_schema_becomes_a_model_file() {
        // The shape of Replicate's `openapi_schema` (cog): Input with x-order, enums as allOf refs.
        let version = json!({"openapi_schema": {"components": {"schemas": {
            "Input": {"type": "object", "title": "Input", "required": ["prompt"], "properties": {
                "seed": {"type": "integer", "title": "Seed", "x-order": 2},
                "prompt": {"type": "string", "title": "Prompt", "x-order": 0},
                "image": {"type": "string", "format": "uri", "x-order": 3},
                "aspect_ratio": {"allOf": [{"$ref": "#/components/schemas/aspect_ratio"}], "default": "1:1", "x-order": 1}
            }},
            "aspect_ratio": {"enum": ["1:1", "16:9"], "type": "string", "title": "aspect_ratio"},
            "Output": {"type": "array", "items": {"type": "string", "format": "uri"}}
        }}}});
        let text = import_replicate("acme/painter", &version).unwrap_or_else(|e| panic!("{e}"));
        let v: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["extends"], "replicate");
        assert_eq!(v["endpoint"], "/v1/models/acme/painter/predictions");
        assert_eq!(v["modality"], "image");
        let props = v["input_schema"]["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            props.keys().cloned().collect::<Vec<_>>(),
            ["prompt", "aspect_ratio", "seed", "image"]
        );
        assert_eq!(props["aspect_ratio"]["enum"], json!(["1:1", "16:9"]));
        assert_eq!(props["aspect_ratio"]["default"], "1:1");
        assert!(props["prompt"].get("title").is_none());
        assert_eq!(props["image"]["x-media"]["kind"], "image");
        assert_eq!(v["input_schema"]["required"], json!(["prompt"]));
        assert!(text.contains("UNCONFIRMED"));
    }

    #[test]
    fn an_openapi_operation_is_scaffolded() {
        let doc = json!({"info": {"title": "Acme API"}, "paths": {"/v1/generate": {"post": {
            "operationId": "generateVideo",
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Req"}}}},
            "responses": {"200": {"content": {"application/json": {"schema": {"properties": {"video_url": {"type": "string"}}}}}}}
        }}}, "components": {"schemas": {"Req": {"type": "object", "required": ["prompt"], "properties": {"prompt": {"type": "string"}}}}}});
        let text = scaffold("acme", &doc, "generateVideo").unwrap_or_else(|e| panic!("{e}"));
        let v: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["id"], "acme/generatevideo");
        assert_eq!(v["endpoint"], "/v1/generate");
        assert_eq!(v["modality"], "video");
        assert_eq!(v["input_schema"]["required"], json!(["prompt"]));
        assert!(scaffold("acme", &doc, "nope").is_err());
        assert!(scaffold("acme", &doc, "POST /v1/generate").is_ok());
    }
}
