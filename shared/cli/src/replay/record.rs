//! Recording a fixture: a loopback proxy sits between the system and the provider (the
//! simulators, or the real provider with credentials from the environment) and between the
//! provider and the webhook route, and writes down every exchange except request headers
//! (credentials).

use super::fixture::{
    Callback, Expect, Fixture, Interaction, RecordedRequest, RecordedResponse, bundles_by_id,
    project,
};
use super::{DROPPED, Keys, respond, serve, system_options};
use crate::client::{Client, CreateOptions};
use crate::local::LocalSystem;
use anyhow::{Result, bail};
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

struct RecordState {
    target: String,
    http: reqwest::Client,
    interactions: Mutex<Vec<Interaction>>,
    callbacks: Mutex<Vec<Callback>>,
    system: Mutex<Option<String>>,
}

fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    q.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

fn body_value(content_type: &str, bytes: &[u8]) -> (Option<Value>, Option<String>) {
    if bytes.is_empty() {
        return (None, None);
    }
    if content_type.contains("json")
        && let Ok(v) = serde_json::from_slice::<Value>(bytes)
    {
        return (Some(v), None);
    }
    if content_type.starts_with("text/")
        && let Ok(s) = std::str::from_utf8(bytes)
    {
        return (Some(Value::String(s.to_string())), None);
    }
    (
        None,
        Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
    )
}

async fn record_handler(
    State(st): State<Arc<RecordState>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if let Some(rest) = path.strip_prefix("/v1/webhooks/") {
        // A provider callback on its way to the system.
        let mut kept = BTreeMap::new();
        for (k, v) in &headers {
            let k = k.as_str().to_ascii_lowercase();
            if k.starts_with("webhook-") || k.starts_with("x-fal-") || k == "content-type" {
                kept.insert(k, v.to_str().unwrap_or_default().to_string());
            }
        }
        let value = serde_json::from_slice::<Value>(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
        let after = st.interactions.lock().len();
        st.callbacks.lock().push(Callback {
            after,
            headers: kept,
            body: value,
        });
        let Some(system) = st.system.lock().clone() else {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        };
        let mut req = st
            .http
            .post(format!("{system}/v1/webhooks/{rest}"))
            .body(body.to_vec());
        for (k, v) in &headers {
            if k != "host" && k != "content-length" {
                req = req.header(k, v);
            }
        }
        return match req.send().await {
            Ok(r) => StatusCode::from_u16(r.status().as_u16())
                .unwrap_or(StatusCode::OK)
                .into_response(),
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        };
    }
    let sub = path.strip_prefix("/provider").unwrap_or(&path).to_string();
    let mut url = format!("{}{sub}", st.target);
    if let Some(q) = uri.query() {
        url = format!("{url}?{q}");
    }
    let mut req = st.http.request(method.clone(), &url).body(body.to_vec());
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let request_body = if content_type.contains("json") {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else if content_type.starts_with("multipart/") {
        json!({"multipart_bytes": body.len()})
    } else if body.is_empty() {
        Value::Null
    } else {
        json!({"bytes": body.len()})
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("record proxy: {e}")).into_response();
        }
    };
    let status = resp.status().as_u16();
    let mut rh = BTreeMap::new();
    for (k, v) in resp.headers() {
        let k = k.as_str().to_ascii_lowercase();
        if !DROPPED.contains(&k.as_str())
            && let Ok(v) = v.to_str()
        {
            rh.insert(k, v.to_string());
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    let ct = rh.get("content-type").cloned().unwrap_or_default();
    let (b, b64) = body_value(&ct, &bytes);
    let recorded = RecordedResponse {
        status,
        headers: rh,
        body: b,
        body_base64: b64,
    };
    st.interactions.lock().push(Interaction {
        request: RecordedRequest {
            method: method.to_string(),
            path: sub,
            query: query_map(uri.query()),
            body: request_body,
        },
        response: recorded.clone(),
    });
    respond(&recorded)
}

/// Where a recording talks to.
pub enum Target {
    /// The in-process simulators.
    Simulators,
    /// The real provider (its bundle's base URL), credentials from the environment.
    Provider,
}

/// Records one execution of `model` with `input` as a fixture named `name`.
pub async fn record(
    bundles_dir: &Path,
    model: &str,
    input: Value,
    name: &str,
    description: &str,
    target: Target,
) -> Result<Fixture> {
    let bundles = bundles_by_id(bundles_dir)?;
    let Some((_, bundle)) = bundles.get(model) else {
        bail!(
            "no bundle with id {model} in {} (known: {})",
            bundles_dir.display(),
            bundles.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    };
    let keys = Keys::new();
    let mut sim_cfg = executor_simulators::SimConfig {
        job_duration_ms: 400,
        ..Default::default()
    };
    sim_cfg.replicate_webhook_secret = keys.whsec.clone();
    let (sims, target_url, source) = match target {
        Target::Simulators => {
            let sims = executor_simulators::Simulators::start(sim_cfg).await?;
            let url = sims.base_url(&bundle.provider);
            (Some(sims), url, "simulator".to_string())
        }
        Target::Provider => {
            for c in &bundle.credentials {
                if std::env::var(c).map(|v| v.is_empty()).unwrap_or(true) {
                    bail!(
                        "recording against {} needs {c} in the environment",
                        bundle.provider
                    );
                }
            }
            (None, bundle.base_url.clone(), "provider".to_string())
        }
    };
    let st = Arc::new(RecordState {
        target: target_url.trim_end_matches('/').to_string(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        interactions: Mutex::new(Vec::new()),
        callbacks: Mutex::new(Vec::new()),
        system: Mutex::new(None),
    });
    let router = axum::Router::new()
        .fallback(record_handler)
        .with_state(st.clone());
    let (proxy, server) = serve(router).await?;
    let dir = tempfile::tempdir()?;
    let mut opts = system_options(
        dir.path(),
        bundles_dir,
        &bundle.provider,
        &format!("{proxy}/provider"),
        &keys,
    );
    opts.public_base_url = Some(proxy.clone());
    if let Some(s) = &sims {
        opts.callback_keys = Some((
            s.replicate_webhook_secret().to_string(),
            vec![s.fal_public_key_b64url()],
        ));
    } else {
        opts.allow_missing_credentials = false;
        opts.callback_keys = None;
    }
    let sys = LocalSystem::start(opts).await?;
    *st.system.lock() = Some(sys.url.clone());
    let outcome = async {
        let client = Client::new(&sys.url, &sys.dev_key)?;
        let (status, body) = client
            .create(model, &input, &CreateOptions::default())
            .await?;
        if status >= 300 {
            // Refused at the door: the fixture says so (and that the provider saw nothing).
            return Ok(Expect {
                outcome: format!("rejected_{status}"),
                error_class: body["error_class"].as_str().map(str::to_string),
                field: body["field"].as_str().map(str::to_string),
                outputs: vec![],
                usage: Value::Null,
                cost_usd_micros: 0,
            });
        }
        let id = body["id"].as_str().unwrap_or_default().to_string();
        let view = client
            .wait_final(&id, Duration::from_secs(300), |_| {})
            .await?;
        // Let late callbacks (e.g. a second completed event) land in the recording.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<_, anyhow::Error>(project(&view))
    }
    .await;
    sys.stop().await;
    server.abort();
    drop(sims);
    let expect = outcome?;
    let mut fixture = Fixture {
        bundle: model.to_string(),
        name: name.to_string(),
        description: description.to_string(),
        source,
        input,
        interactions: st.interactions.lock().clone(),
        callbacks: st.callbacks.lock().clone(),
        max_duration_seconds: None,
        expect,
    };
    // URLs the simulator minted name a loopback port that will not exist at replay: write
    // them as the provider's own base URL (the replay serves them verbatim, so outputs stay
    // comparable).
    // The callback URLs the system handed out name the proxy's port: write a neutral host.
    let mut text = serde_json::to_string(&fixture)?;
    if matches!(target, Target::Simulators) {
        text = text.replace(&target_url, bundle.base_url.trim_end_matches('/'));
    }
    text = text.replace(&proxy, "https://executor.example");
    fixture = serde_json::from_str(&text)?;
    Ok(fixture)
}
