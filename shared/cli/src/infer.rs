//! `executor bundle infer --fixtures DIR`: from recorded provider answers, propose how the
//! `declared` adapter should read them (job id, status values, outputs, usage, failures) and
//! the error rules, as a model-file patch for a person to review. Heuristics over JSON shapes
//! only: no provider is known by name here.

use crate::conformance::response_of;
use crate::replay::Fixture;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

const MEDIA_EXT: [(&str, &str, &str); 14] = [
    (".png", "image", "image/png"),
    (".jpg", "image", "image/jpeg"),
    (".jpeg", "image", "image/jpeg"),
    (".webp", "image", "image/webp"),
    (".svg", "image", "image/svg+xml"),
    (".mp4", "video", "video/mp4"),
    (".webm", "video", "video/webm"),
    (".mov", "video", "video/quicktime"),
    (".mp3", "audio", "audio/mpeg"),
    (".wav", "audio", "audio/wav"),
    (".glb", "3d", "model/gltf-binary"),
    (".fbx", "3d", "application/octet-stream"),
    (".obj", "3d", "model/obj"),
    (".usdz", "3d", "model/vnd.usdz+zip"),
];

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn media_of_url(u: &str) -> Option<(&'static str, &'static str)> {
    let path = u.split('?').next().unwrap_or(u).to_ascii_lowercase();
    MEDIA_EXT
        .iter()
        .find(|(ext, _, _)| path.ends_with(ext))
        .map(|(_, k, m)| (*k, *m))
}

fn kind_of_key(key: &str) -> Option<&'static str> {
    let k = key.to_ascii_lowercase();
    if k.contains("video") {
        Some("video")
    } else if k.contains("image") || k.contains("sample") || k.contains("img") {
        Some("image")
    } else if k.contains("audio") || k.contains("speech") {
        Some("audio")
    } else if k.contains("glb") || k.contains("model") || k.contains("mesh") {
        Some("3d")
    } else {
        None
    }
}

fn looks_base64(s: &str) -> bool {
    s.len() >= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

fn looks_hex(s: &str) -> bool {
    s.len() >= 256 && s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

const TEXT_KEYS: [&str; 4] = ["text", "content", "transcript", "output_text"];
/// Keys whose value is a structured output (tool calls, word timings), kept as JSON.
const STRUCTURED_KEYS: [&str; 7] = [
    "tool_calls",
    "function_call",
    "functionCall",
    "words",
    "segments",
    "utterances",
    "tool_use",
];
const USAGE_WORDS: [&str; 10] = [
    "token",
    "duration",
    "credit",
    "cost",
    "character",
    "second",
    "seconds",
    "unit",
    "megapixel",
    "predict_time",
];

/// An output proposal, with the pointer it came from.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    each: Option<String>,
    rule: Map<String, Value>,
}

/// Walks a value and proposes output rules (`pointer` is where `v` sits).
fn outputs_in(v: &Value, pointer: &str, key: &str, out: &mut Vec<Found>) {
    outputs_under(v, pointer, key, None, out)
}

/// As [`outputs_in`], `parent` the media kind an enclosing key names (`video: {uri}`).
fn outputs_under(
    v: &Value,
    pointer: &str,
    key: &str,
    parent: Option<&'static str>,
    out: &mut Vec<Found>,
) {
    let key_kind = kind_of_key(key).or(parent);
    let binary_key = {
        let k = key.to_ascii_lowercase();
        k.contains("base64") || k.contains("b64")
    };
    match v {
        Value::String(s) => {
            let mut rule = Map::new();
            if s.starts_with("data:") && s.contains(";base64,") {
                let mime = s[5..].split(';').next().unwrap_or("");
                let kind = mime.split('/').next().unwrap_or("image");
                rule.insert(
                    "kind".into(),
                    json!(if kind == "model" { "3d" } else { kind }),
                );
                rule.insert("base64".into(), json!(pointer));
            } else if s.starts_with("http://") || s.starts_with("https://") {
                let (kind, mime) = match (media_of_url(s), key_kind) {
                    (Some((k, m)), _) => (k, Some(m)),
                    (None, Some(k)) => (k, None),
                    (None, None) => return,
                };
                // Links to the provider's own API are not outputs.
                if [
                    "poll",
                    "status",
                    "callback",
                    "webhook",
                    "cancel",
                    "result_url",
                ]
                .iter()
                .any(|w| key.contains(w))
                {
                    return;
                }
                rule.insert("kind".into(), json!(kind));
                rule.insert("url".into(), json!(pointer));
                if let Some(m) = mime {
                    rule.insert("mime_type".into(), json!(m));
                }
            } else if looks_hex(s)
                || key_kind.is_some()
                    && s.len() >= 8
                    && s.len() % 2 == 0
                    && s.bytes().all(|b| b.is_ascii_hexdigit())
            {
                rule.insert("kind".into(), json!(key_kind.unwrap_or("audio")));
                rule.insert("hex".into(), json!(pointer));
            } else if looks_base64(s) || binary_key && !s.is_empty() {
                rule.insert("kind".into(), json!(key_kind.unwrap_or("image")));
                rule.insert("base64".into(), json!(pointer));
            } else if TEXT_KEYS.contains(&key) && !s.is_empty() {
                rule.insert("kind".into(), json!("text"));
                rule.insert("text".into(), json!(pointer));
            } else {
                return;
            }
            out.push(Found { each: None, rule });
        }
        Value::Array(items) if STRUCTURED_KEYS.contains(&key) && !items.is_empty() => {
            let mut rule = Map::new();
            rule.insert("kind".into(), json!("json"));
            rule.insert("json".into(), json!(pointer));
            out.push(Found { each: None, rule });
        }
        Value::Array(_) if STRUCTURED_KEYS.contains(&key) => {}
        Value::Object(_) if STRUCTURED_KEYS.contains(&key) => {
            let mut rule = Map::new();
            rule.insert("kind".into(), json!("json"));
            rule.insert("json".into(), json!(pointer));
            out.push(Found { each: None, rule });
        }
        Value::Array(items) => {
            // An array of like items: one rule over `each`, pointers relative to the item.
            let mut inner: Vec<Found> = Vec::new();
            if let Some(first) = items.first() {
                outputs_under(first, "", key, key_kind, &mut inner);
            }
            for mut f in inner {
                if f.each.is_none() {
                    // Pointers are relative to the item ("" when the item is the URL itself).
                    f.each = Some(pointer.to_string());
                    out.push(f);
                } else {
                    // Nested arrays: keep the outer item's first element addressed.
                    let each = f.each.take().unwrap_or_default();
                    f.each = Some(format!("{pointer}/0{each}"));
                    out.push(f);
                }
            }
        }
        Value::Object(m) => {
            if key == "usage" || key == "usageMetadata" || key == "metrics" {
                return;
            }
            let before = out.len();
            for (k, x) in m {
                outputs_under(x, &format!("{pointer}/{}", escape(k)), k, key_kind, out);
            }
            // Siblings that describe the media: mime type, dimensions, duration.
            for f in out[before..].iter_mut() {
                let rel = |name: &str| format!("{pointer}/{name}");
                for (k, field) in [
                    ("content_type", "mime_type_at"),
                    ("mime_type", "mime_type_at"),
                    ("mimeType", "mime_type_at"),
                    ("width", "width"),
                    ("height", "height"),
                    ("duration", "duration_seconds"),
                    ("duration_seconds", "duration_seconds"),
                ] {
                    if m.contains_key(k) && !f.rule.contains_key(field) {
                        f.rule.insert(field.into(), json!(rel(k)));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Numeric figures that look like usage (tokens, durations, credits, costs).
fn usage_in(v: &Value, pointer: &str, under_usage: bool, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{pointer}/{}", escape(k));
                let usage_key = ["usage", "usagemetadata", "metrics", "billing", "extra_info"]
                    .contains(&k.to_ascii_lowercase().as_str());
                usage_in(x, &p, under_usage || usage_key, out);
            }
        }
        Value::Number(_) | Value::String(_) => {
            let name = pointer.rsplit('/').next().unwrap_or("").to_string();
            let lower = name.to_ascii_lowercase();
            let numeric =
                v.is_number() || v.as_str().is_some_and(|s| s.trim().parse::<f64>().is_ok());
            if numeric
                && (under_usage && !lower.ends_with("_id")
                    || USAGE_WORDS.iter().any(|w| lower.contains(w)))
                && !lower.contains("limit")
            {
                let canonical = match lower.as_str() {
                    "prompt_tokens" | "input_tokens" | "prompttokencount" => "input_tokens",
                    "completion_tokens" | "output_tokens" | "candidatestokencount" => {
                        "output_tokens"
                    }
                    _ => &lower,
                };
                out.entry(canonical.to_string())
                    .or_insert_with(|| pointer.to_string());
            }
        }
        _ => {}
    }
}

const STATUS_KEYS: [&str; 6] = [
    "status",
    "state",
    "task_status",
    "processing_status",
    "done",
    "phase",
];

fn state_word(v: &str) -> &'static str {
    let s = v.to_ascii_lowercase();
    if [
        "succeed",
        "success",
        "completed",
        "complete",
        "ready",
        "done",
        "finished",
        "true",
        "ended",
    ]
    .iter()
    .any(|w| s.contains(w))
        && !s.contains("fail")
    {
        "succeeded"
    } else if ["fail", "error", "moderated", "rejected", "not found"]
        .iter()
        .any(|w| s.contains(w))
    {
        "failed"
    } else if s.contains("cancel") || s.contains("abort") {
        "canceled"
    } else if [
        "process",
        "running",
        "progress",
        "dreaming",
        "generating",
        "starting",
    ]
    .iter()
    .any(|w| s.contains(w))
    {
        "running"
    } else {
        "pending"
    }
}

fn find_status(v: &Value, pointer: &str, out: &mut BTreeMap<String, BTreeSet<String>>) {
    if let Value::Object(m) = v {
        for (k, x) in m {
            let p = format!("{pointer}/{}", escape(k));
            if STATUS_KEYS.contains(&k.as_str()) {
                let s = match x {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    _ => continue,
                };
                out.entry(p.clone()).or_default().insert(s);
            } else if x.is_object() {
                find_status(x, &p, out);
            }
        }
    }
}

const ID_KEYS: [&str; 7] = [
    "id",
    "task_id",
    "request_id",
    "name",
    "result",
    "generation_id",
    "prediction_id",
];

fn find_id(v: &Value, pointer: &str, depth: usize) -> Option<String> {
    let m = v.as_object()?;
    for k in ID_KEYS {
        if let Some(Value::String(s)) = m.get(k)
            && !s.is_empty()
            && !s.contains(' ')
        {
            return Some(format!("{pointer}/{k}"));
        }
    }
    if depth < 2 {
        for (k, x) in m {
            if let Some(p) = find_id(x, &format!("{pointer}/{}", escape(k)), depth + 1) {
                return Some(p);
            }
        }
    }
    None
}

fn error_pointers(body: &Value) -> (Vec<String>, Vec<String>) {
    let mut code = Vec::new();
    let mut message = Vec::new();
    for p in [
        "/error/code",
        "/error/type",
        "/code",
        "/name",
        "/error_type",
        "/detail/status",
        "/base_resp/status_code",
        "/err_code",
        "/category",
    ] {
        if body
            .pointer(p)
            .is_some_and(|v| v.is_string() || v.is_number())
        {
            code.push(p.to_string());
        }
    }
    for p in [
        "/error/message",
        "/message",
        "/detail",
        "/detail/message",
        "/errors",
        "/error",
        "/base_resp/status_msg",
        "/err_msg",
        "/msg",
    ] {
        if body
            .pointer(p)
            .is_some_and(|v| v.is_string() || v.is_array())
        {
            message.push(p.to_string());
        }
    }
    (code, message)
}

/// The proposal for a set of fixtures (one model's recorded conversations).
pub fn propose(fixtures: &[Fixture]) -> Value {
    let mut outputs: Vec<Found> = Vec::new();
    let mut usage = BTreeMap::new();
    let mut statuses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut job_id = None;
    let mut rules: BTreeMap<(u16, String), String> = BTreeMap::new();
    let mut code_ptrs: BTreeSet<String> = BTreeSet::new();
    let mut message_ptrs: BTreeSet<String> = BTreeSet::new();
    let mut polled = false;
    for f in fixtures {
        let ok: Vec<_> = f
            .interactions
            .iter()
            .filter(|i| (200..300).contains(&i.response.status))
            .collect();
        if ok.len() > 1 {
            polled = true;
            if job_id.is_none() {
                job_id = ok[0].response.body.as_ref().and_then(|b| find_id(b, "", 0));
            }
            for i in &ok[1..] {
                if let Some(b) = &i.response.body {
                    find_status(b, "", &mut statuses);
                }
            }
        }
        if f.expect.outcome == "succeeded"
            && let Some(last) = ok.last()
        {
            let body = response_of(&last.response).body;
            let mut found = Vec::new();
            outputs_in(&body, "", "", &mut found);
            if last.response.body_base64.is_some() {
                let mut rule = Map::new();
                let ct = last
                    .response
                    .headers
                    .get("content-type")
                    .cloned()
                    .unwrap_or_default();
                let kind = ct.split('/').next().unwrap_or("audio").to_string();
                rule.insert("kind".into(), json!(kind));
                rule.insert("base64".into(), json!("/body_base64"));
                rule.insert("mime_type_at".into(), json!("/content_type"));
                found = vec![Found { each: None, rule }];
            }
            for x in found {
                if !outputs.contains(&x) {
                    outputs.push(x);
                }
            }
            usage_in(&body, "", false, &mut usage);
        }
        for i in &f.interactions {
            if !(200..300).contains(&i.response.status)
                && let Some(b) = &i.response.body
            {
                let (c, m) = error_pointers(b);
                let code = c.first().and_then(|p| b.pointer(p)).map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                code_ptrs.extend(c);
                message_ptrs.extend(m);
                let class = executor_bundles::adapters::class_of_status(i.response.status);
                rules
                    .entry((i.response.status, code.unwrap_or_default()))
                    .or_insert_with(|| class.as_str().to_string());
            }
        }
    }
    let mut interpret = Map::new();
    if polled && let Some(j) = job_id {
        interpret.insert("job_id".into(), json!(j));
    }
    if let Some((pointer, values)) = statuses.iter().max_by_key(|(_, v)| v.len()) {
        interpret.insert("status".into(), json!(pointer));
        let map: Map<String, Value> = values
            .iter()
            .map(|v| (v.clone(), json!(state_word(v))))
            .collect();
        interpret.insert("statuses".into(), Value::Object(map));
    }
    let outs: Vec<Value> = outputs
        .into_iter()
        .map(|f| {
            let mut r = Map::new();
            if let Some(e) = f.each {
                r.insert("each".into(), json!(e));
            }
            r.extend(f.rule);
            Value::Object(r)
        })
        .collect();
    interpret.insert("outputs".into(), Value::Array(outs));
    if !usage.is_empty() {
        interpret.insert("usage".into(), json!(usage));
    }
    let mut patch = Map::new();
    patch.insert("interpret".into(), Value::Object(interpret));
    if !code_ptrs.is_empty() || !message_ptrs.is_empty() {
        let mut ef = Map::new();
        if !code_ptrs.is_empty() {
            ef.insert("code".into(), json!(code_ptrs));
        }
        if !message_ptrs.is_empty() {
            ef.insert("message".into(), json!(message_ptrs));
        }
        patch.insert("error_fields".into(), Value::Object(ef));
    }
    if !rules.is_empty() {
        let list: Vec<Value> = rules
            .into_iter()
            .map(|((status, code), class)| {
                let mut r = Map::new();
                r.insert("status".into(), json!(status));
                if !code.is_empty() {
                    r.insert("code".into(), json!(code));
                }
                r.insert("class".into(), json!(class));
                r.insert(
                    "note".into(),
                    json!("proposed from a recorded answer: confirm in the provider's docs"),
                );
                Value::Object(r)
            })
            .collect();
        patch.insert("errors".into(), Value::Array(list));
    }
    Value::Object(patch)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn fixture(outcome: &str, bodies: Vec<(u16, Value)>) -> Fixture {
        let interactions = bodies
            .into_iter()
            .map(|(status, body)| crate::replay::Interaction {
                request: crate::replay::RecordedRequest {
                    method: "GET".into(),
                    path: "/x".into(),
                    query: Default::default(),
                    body: Value::Null,
                },
                response: crate::replay::RecordedResponse {
                    status,
                    headers: Default::default(),
                    body: Some(body),
                    body_base64: None,
                },
            })
            .collect();
        Fixture {
            bundle: "m".into(),
            name: "f".into(),
            description: String::new(),
            source: String::new(),
            input: json!({}),
            interactions,
            callbacks: vec![],
            max_duration_seconds: None,
            expect: crate::replay::Expect {
                outcome: outcome.into(),
                error_class: None,
                field: None,
                outputs: vec![],
                usage: Value::Null,
                cost_usd_micros: 0,
            },
        }
    }

    #[test]
    fn a_task_api_is_read_back() {
        let f = fixture(
            "succeeded",
            vec![
                (200, json!({"data": {"task_id": "t1"}})),
                (200, json!({"data": {"task_status": "processing"}})),
                (
                    200,
                    json!({"data": {"task_status": "succeed", "task_result": {"videos": [{"url": "https://cdn.example/x.mp4", "duration": "5.1"}]}}}),
                ),
            ],
        );
        let failed = fixture(
            "failed",
            vec![(429, json!({"code": 1302, "message": "rate limit"}))],
        );
        let p = propose(&[f, failed]);
        let i = &p["interpret"];
        assert_eq!(i["job_id"], "/data/task_id");
        assert_eq!(i["status"], "/data/task_status");
        assert_eq!(i["statuses"]["succeed"], "succeeded");
        assert_eq!(i["statuses"]["processing"], "running");
        assert_eq!(
            i["outputs"][0],
            json!({"each": "/data/task_result/videos", "kind": "video", "url": "/url", "mime_type": "video/mp4", "duration_seconds": "/duration"})
        );
        assert_eq!(p["errors"][0]["status"], 429);
        assert_eq!(p["errors"][0]["class"], "rate_limited");
        assert_eq!(p["error_fields"]["code"][0], "/code");
    }

    #[test]
    fn chat_text_and_usage_are_read_back() {
        let f = fixture(
            "succeeded",
            vec![(
                200,
                json!({"choices": [{"message": {"role": "assistant", "content": "hi"}}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}),
            )],
        );
        let p = propose(&[f]);
        assert_eq!(
            p["interpret"]["outputs"][0],
            json!({"each": "/choices", "kind": "text", "text": "/message/content"})
        );
        assert_eq!(
            p["interpret"]["usage"]["input_tokens"],
            "/usage/prompt_tokens"
        );
        assert_eq!(
            p["interpret"]["usage"]["output_tokens"],
            "/usage/completion_tokens"
        );
    }
}
