//! The outbound HTTP transport of bundle steps: one reqwest client (rustls), per-call
//! timeouts, responses captured as JSON (or base64 for binary bodies), and a record of every
//! call without query strings or credentials.

use crate::resilience::{Admission, Resilience, ResilienceConfig};
use base64::Engine as _;
use executor_lifecycle::{CallRecord, Failure};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

/// A captured response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, lower-cased names.
    pub headers: Map<String, Value>,
    /// JSON body, or `{"body_base64", "content_type"}` for non-JSON bodies.
    pub body: Value,
}

impl HttpResponse {
    /// The capture as the context sees it.
    pub fn to_value(&self) -> Value {
        json!({"status": self.status, "headers": self.headers, "body": self.body})
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(|v| v.as_str())
    }

    /// `Retry-After` / `retry-after-ms`, in milliseconds.
    pub fn retry_after_ms(&self) -> Option<u64> {
        if let Some(ms) = self
            .header("retry-after-ms")
            .and_then(|v| v.parse::<f64>().ok())
        {
            return Some(ms.max(0.0) as u64);
        }
        self.header("retry-after")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|s| (s.max(0.0) * 1000.0) as u64)
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a call produced no response.
///
/// Only [`TransportError::Connect`], [`TransportError::CircuitOpen`] and
/// [`TransportError::Bulkhead`] mean the provider certainly never received the request. A
/// timeout, a reset or close after the request was written, and an incomplete response
/// (`IncompleteMessage`: the server read the request and closed the connection) may all
/// follow a request the provider received and acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No connection was made (DNS failure, connection refused, TLS handshake failure):
    /// no byte of the request reached the provider.
    Connect(String),
    /// Timed out: the provider may have received the request.
    Timeout,
    /// The connection broke once the request was (maybe partly) sent, or the response was
    /// cut off: the provider may have received the request.
    Broken(String),
    /// The host's circuit breaker is open: nothing was sent.
    CircuitOpen(String),
    /// The host's bulkhead stayed full: nothing was sent.
    Bulkhead(String),
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Method.
    pub method: &'static str,
    /// URL.
    pub url: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// Body.
    pub body: RequestBody,
    /// Timeout.
    pub timeout: Duration,
    /// Sent even when the host's circuit breaker is open: the one look that decides whether
    /// a job the provider may have finished is delivered (at the deadline, at a cancel).
    pub probe: bool,
}

/// A request body.
#[derive(Debug, Clone)]
pub enum RequestBody {
    /// No body.
    None,
    /// JSON.
    Json(Value),
    /// A multipart form.
    Multipart(Vec<(String, Part)>),
    /// Raw bytes.
    Binary {
        /// The bytes.
        bytes: Vec<u8>,
        /// Their content type.
        content_type: String,
    },
}

/// One multipart field.
#[derive(Debug, Clone)]
pub enum Part {
    /// A text field.
    Text(String),
    /// A file field.
    File {
        /// The bytes.
        bytes: Vec<u8>,
        /// Their content type.
        mime: String,
    },
}

/// The shared client, with per-host resilience.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    resilience: std::sync::Arc<Resilience>,
}

/// The host part of a URL.
pub fn host_of(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    rest.split(['/', '?']).next().unwrap_or(rest).to_string()
}

/// The breaker and bulkhead key of a URL: its host and first path segment
/// (`api.replicate.com/v1`, `queue.fal.run/fal-ai`). Real providers are distinct hosts; the
/// simulators share one (`127.0.0.1:PORT/<provider>`), and a key of the host alone let one
/// simulated provider's 5xx open the breaker of all of them (docs/chaos.md).
pub fn breaker_key(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let mut parts = rest.split('/');
    let host = parts.next().unwrap_or(rest);
    match parts.find(|p| !p.is_empty()) {
        Some(first) => format!("{host}/{first}"),
        None => host.to_string(),
    }
}

impl Transport {
    /// A transport with a pooled client.
    pub fn new(cfg: ResilienceConfig) -> Result<Transport, String> {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()
            .map(|client| Transport {
                client,
                resilience: std::sync::Arc::new(Resilience::new(cfg)),
            })
            .map_err(|e| e.to_string())
    }

    /// The per-host state.
    pub fn resilience(&self) -> &Resilience {
        &self.resilience
    }

    /// Sends with the host's breaker, bulkhead and retry policy. `classify` is the adapter's
    /// view of a non-2xx answer; only what it calls retryable is retried. A non-idempotent
    /// request (a create: POST, PATCH) is retried here only when no connection was made; once
    /// any byte may have been sent, retrying it is the lifecycle's decision, counted in
    /// attempts (a second create could be a second paid job).
    pub async fn send(
        &self,
        step: &str,
        req: HttpRequest,
        classify: &(dyn Fn(&HttpResponse) -> Failure + Sync),
    ) -> (Result<HttpResponse, TransportError>, Vec<CallRecord>) {
        let host = breaker_key(&req.url);
        let idempotent = matches!(req.method, "GET" | "PUT" | "DELETE" | "HEAD");
        let r = &self.resilience;
        r.earn();
        let mut records = Vec::new();
        let mut retry = 0u32;
        loop {
            if !req.probe && r.admit(&host) == Admission::Open {
                records.push(refused(step, &req, "circuit open"));
                return (Err(TransportError::CircuitOpen(host)), records);
            }
            let Some(permit) = r.slot(&host).await else {
                records.push(refused(step, &req, "bulkhead full"));
                return (Err(TransportError::Bulkhead(host)), records);
            };
            let (result, mut record) = self.send_once(step, &req).await;
            drop(permit);
            let (healthy, failure) = match &result {
                Ok(resp) if resp.is_success() => (true, None),
                Ok(resp) => (
                    resp.status < 500 && resp.status != 408,
                    Some(classify(resp)),
                ),
                Err(e) => (false, Some(crate::driver::transport_failure(e))),
            };
            r.record(&host, healthy);
            let retryable = match (&result, &failure) {
                (Ok(_), Some(f)) => f.class.is_retryable() && idempotent,
                (Err(TransportError::Connect(_)), _) => true,
                (Err(_), _) => idempotent,
                _ => false,
            };
            let Some(f) = failure.filter(|_| retryable && retry < r.config().max_retries) else {
                records.push(record);
                return (result, records);
            };
            let delay = r.delay_ms(retry + 1, f.retry_after_ms);
            if delay > r.config().retry_max_ms || !r.spend() {
                records.push(record);
                return (result, records);
            }
            record.retried = Some(format!("{} — retried after {delay} ms", f.class));
            records.push(record);
            retry += 1;
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }

    /// One attempt; returns the response (or why none) and the call record.
    async fn send_once(
        &self,
        step: &str,
        req: &HttpRequest,
    ) -> (Result<HttpResponse, TransportError>, CallRecord) {
        let started = Instant::now();
        let method =
            reqwest::Method::from_bytes(req.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut rb = self.client.request(method, &req.url).timeout(req.timeout);
        for (k, v) in &req.headers {
            rb = rb.header(k, v);
        }
        if !req.query.is_empty() {
            rb = rb.query(&req.query);
        }
        match &req.body {
            RequestBody::None => {}
            RequestBody::Json(body) => rb = rb.json(body),
            RequestBody::Multipart(fields) => {
                let mut form = reqwest::multipart::Form::new();
                for (k, v) in fields {
                    form = match v {
                        Part::Text(t) => form.text(k.clone(), t.clone()),
                        Part::File { bytes, mime } => {
                            let ext = mime.rsplit('/').next().unwrap_or("bin");
                            let part = reqwest::multipart::Part::bytes(bytes.clone())
                                .file_name(format!("{k}.{ext}"))
                                .mime_str(mime)
                                .unwrap_or_else(|_| reqwest::multipart::Part::bytes(bytes.clone()));
                            form.part(k.clone(), part)
                        }
                    };
                }
                rb = rb.multipart(form);
            }
            RequestBody::Binary {
                bytes,
                content_type,
            } => {
                rb = rb
                    .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                    .body(bytes.clone());
            }
        }
        let result = match rb.send().await {
            Ok(resp) => read(resp).await,
            Err(e) if e.is_timeout() => Err(TransportError::Timeout),
            Err(e) if e.is_connect() => Err(TransportError::Connect(error_chain(&e))),
            // `is_request()` also covers "the server read the request and closed the
            // connection" (hyper's IncompleteMessage) and resets after sending: the provider
            // may have acted on it.
            Err(e) => Err(TransportError::Broken(error_chain(&e))),
        };
        let record = CallRecord {
            step: step.to_string(),
            method: req.method.to_string(),
            url: req.url.split('?').next().unwrap_or_default().to_string(),
            status: result.as_ref().ok().map(|r| r.status),
            latency_ms: started.elapsed().as_millis() as u64,
            error: result.as_ref().err().map(|e| match e {
                TransportError::Connect(m) => format!("connect: {}", redact(m)),
                TransportError::Timeout => "timeout".to_string(),
                TransportError::Broken(m) => format!("broken: {}", redact(m)),
                TransportError::CircuitOpen(_) => "circuit open".to_string(),
                TransportError::Bulkhead(_) => "bulkhead full".to_string(),
            }),
            retried: None,
        };
        (result, record)
    }
}

/// An error with its sources ("error sending request: connection closed before message
/// completed"), which reqwest's own message leaves out.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The record of a call that was not sent.
fn refused(step: &str, req: &HttpRequest, why: &str) -> CallRecord {
    CallRecord {
        step: step.to_string(),
        method: req.method.to_string(),
        url: req.url.split('?').next().unwrap_or_default().to_string(),
        status: None,
        latency_ms: 0,
        error: Some(why.to_string()),
        retried: None,
    }
}

/// Drops query strings from URLs in error text.
fn redact(msg: &str) -> String {
    msg.split_whitespace()
        .map(|w| match w.find('?') {
            Some(i) if w.contains("://") => &w[..i],
            _ => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn read(resp: reqwest::Response) -> Result<HttpResponse, TransportError> {
    let status = resp.status().as_u16();
    let mut headers = Map::new();
    for (k, v) in resp.headers() {
        if let Ok(s) = v.to_str() {
            headers.insert(
                k.as_str().to_ascii_lowercase(),
                Value::String(s.to_string()),
            );
        }
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let bytes = resp.bytes().await.map_err(|e| {
        if e.is_timeout() {
            TransportError::Timeout
        } else {
            TransportError::Broken(e.to_string())
        }
    })?;
    let body = if bytes.is_empty() {
        Value::Null
    } else if content_type.contains("json")
        || content_type.is_empty()
        || content_type.starts_with("text/")
    {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).to_string()))
    } else {
        json!({
            "body_base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
            "content_type": content_type,
            "size": bytes.len(),
        })
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use executor_lifecycle::ErrorClass;

    fn get(probe: bool) -> HttpRequest {
        HttpRequest {
            method: "GET",
            // Nothing listens on port 1: a call that goes out fails to connect.
            url: "http://127.0.0.1:1/v1/jobs/abc".into(),
            headers: vec![],
            query: vec![],
            body: RequestBody::None,
            timeout: Duration::from_secs(2),
            probe,
        }
    }

    // Chaos on AWS found it: other executions' faults opened Runway's breaker, and the look
    // at the deadline of a job Runway had finished was refused unsent, so it timed out.
    #[tokio::test]
    async fn an_open_breaker_refuses_calls_but_not_the_last_look_at_a_job() {
        let cfg = ResilienceConfig {
            breaker_consecutive_failures: 1,
            max_retries: 0,
            ..ResilienceConfig::default()
        };
        let t = Transport::new(cfg).unwrap();
        t.resilience().record("127.0.0.1:1/v1", false);
        assert!(t.resilience().is_open("127.0.0.1:1/v1"));
        let classify = |_: &HttpResponse| Failure::new(ErrorClass::ProviderTransient, "x");
        let (r, records) = t.send("poll", get(false), &classify).await;
        assert!(matches!(r, Err(TransportError::CircuitOpen(_))), "{r:?}");
        assert_eq!(records.len(), 1);
        let (r, _) = t.send("poll", get(true), &classify).await;
        assert!(matches!(r, Err(TransportError::Connect(_))), "sent: {r:?}");
    }

    #[test]
    fn each_provider_path_has_its_own_breaker_key() {
        assert_eq!(
            breaker_key("https://api.replicate.com/v1/predictions"),
            "api.replicate.com/v1"
        );
        assert_eq!(
            breaker_key("https://queue.fal.run/fal-ai/flux/dev?x=1"),
            "queue.fal.run/fal-ai"
        );
        assert_eq!(
            breaker_key("http://127.0.0.1:9000/runway/v1/tasks"),
            "127.0.0.1:9000/runway"
        );
        assert_ne!(
            breaker_key("http://127.0.0.1:9000/runway/v1/tasks"),
            breaker_key("http://127.0.0.1:9000/fal/fal-ai/flux")
        );
        assert_eq!(breaker_key("https://api.example.com"), "api.example.com");
        assert_eq!(breaker_key("https://api.example.com/?q"), "api.example.com");
    }
}
