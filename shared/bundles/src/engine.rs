//! The step engine: runs a bundle's step list against a context, the same way for every
//! provider. HTTP responses are captured at `steps.<id>`, transforms, images, files and loops
//! at `vars.<id>`; a non-2xx response (or a 2xx the adapter reads as an error), a transport
//! failure, a stop step, a refused file or image, or a template error ends the run, and the
//! adapter interprets how it ended.

use crate::adapters::Adapter;
use crate::format::{FileAction, HttpRequestStep, ImageFormat, Step, StopOutcome};
use crate::http::{HttpRequest, HttpResponse, RequestBody, Transport, TransportError};
use crate::media::{self, ImageLimits, MediaClient};
use crate::template::{self, TemplateError};
use executor_lifecycle::{CallRecord, ErrorClass};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How a run ended.
#[derive(Debug, Clone)]
pub enum RunEnd {
    /// Every step ran.
    Completed,
    /// A call answered non-2xx (or 2xx with an error the adapter recognizes).
    HttpFailed {
        /// The step.
        step: String,
        /// The response.
        response: HttpResponse,
    },
    /// A call got no response.
    Transport {
        /// The step.
        step: String,
        /// Why.
        error: TransportError,
    },
    /// A stop step ended it, or a file or image step refused its input.
    Stopped {
        /// Class.
        class: ErrorClass,
        /// Message.
        message: String,
    },
    /// A template or expression failed (a bundle bug).
    Template(String),
}

/// The result of running a step list.
#[derive(Debug, Clone)]
pub struct StepRun {
    /// How it ended.
    pub end: RunEnd,
    /// Responses by step id.
    pub responses: BTreeMap<String, HttpResponse>,
    /// The id of the last successful HTTP step.
    pub last_http: Option<String>,
    /// Calls made.
    pub calls: Vec<CallRecord>,
    /// Events published by `publish-event` steps (`{event, step, data}`).
    pub events: Vec<Value>,
    /// Media re-hosted by `file-handler` (`rehost`): (source URL, stable URL).
    pub rehosted: Vec<(String, String)>,
    /// The final context.
    pub ctx: Value,
}

impl StepRun {
    /// The response of the last successful HTTP step.
    pub fn last_response(&self) -> Option<&HttpResponse> {
        self.last_http
            .as_ref()
            .and_then(|id| self.responses.get(id))
    }
}

/// What the steps run with.
#[derive(Clone, Copy)]
pub struct Tools<'a> {
    /// Provider calls.
    pub transport: &'a Transport,
    /// Media fetches.
    pub media: &'a MediaClient,
    /// The provider's adapter (how non-2xx and error-bearing 2xx answers read).
    pub adapter: &'a dyn Adapter,
    /// The bundle, whose `errors` rules classify the adapter's failures (what the transport
    /// retries is what the rules call retryable).
    pub bundle: &'a crate::format::Bundle,
    /// Where `rehost` puts media (None: not configured).
    pub store: Option<&'a dyn crate::media::MediaStore>,
    /// The calls are the last look at a job (past its breaker: [`crate::http::HttpRequest`]).
    pub probe: bool,
}

/// Most nesting of conditionals and loops (a bound on recursion).
const MAX_DEPTH: usize = 16;

struct Runner<'a> {
    tools: Tools<'a>,
    ctx: Value,
    responses: BTreeMap<String, HttpResponse>,
    last_http: Option<String>,
    calls: Vec<CallRecord>,
    events: Vec<Value>,
    rehosted: Vec<(String, String)>,
}

type Flow<'f> = Pin<Box<dyn Future<Output = Option<RunEnd>> + Send + 'f>>;

/// The method of the HTTP step `id` in `steps` (nested conditional and for-each steps
/// included), if there is one.
pub fn find_step(steps: &[Step], id: &str) -> Option<&'static str> {
    steps.iter().find_map(|step| match step {
        Step::HttpRequest(h) if h.id == id => Some(h.method.as_str()),
        Step::Conditional(c) => find_step(&c.then, id).or_else(|| find_step(&c.otherwise, id)),
        Step::ForEach(f) => find_step(&f.steps, id),
        _ => None,
    })
}

/// Runs `steps` with `ctx`.
pub async fn run(steps: &[Step], mut ctx: Value, tools: Tools<'_>) -> StepRun {
    if !ctx["steps"].is_object() {
        ctx["steps"] = json!({});
    }
    if !ctx["vars"].is_object() {
        ctx["vars"] = json!({});
    }
    let mut r = Runner {
        tools,
        ctx,
        responses: BTreeMap::new(),
        last_http: None,
        calls: Vec::new(),
        events: Vec::new(),
        rehosted: Vec::new(),
    };
    let end = r.steps(steps, 0).await.unwrap_or(RunEnd::Completed);
    StepRun {
        end,
        responses: r.responses,
        last_http: r.last_http,
        calls: r.calls,
        events: r.events,
        rehosted: r.rehosted,
        ctx: r.ctx,
    }
}

fn stop(class: ErrorClass, message: String) -> Option<RunEnd> {
    Some(RunEnd::Stopped { class, message })
}

impl<'a> Runner<'a> {
    /// Runs a list; `Some(end)` when the run ends early.
    fn steps<'f>(&'f mut self, steps: &'f [Step], depth: usize) -> Flow<'f>
    where
        'a: 'f,
    {
        Box::pin(async move {
            if depth > MAX_DEPTH {
                return Some(RunEnd::Template(format!(
                    "steps nested deeper than {MAX_DEPTH}"
                )));
            }
            for step in steps {
                if let Some(end) = self.step(step, depth).await {
                    return Some(end);
                }
            }
            None
        })
    }

    async fn step(&mut self, step: &Step, depth: usize) -> Option<RunEnd> {
        match step {
            Step::HttpRequest(h) => self.http(h).await,
            Step::TransformPayload(t) => match template::render_value(&t.template, &self.ctx) {
                Ok(v) => {
                    self.ctx["vars"][t.id.as_str()] = v;
                    None
                }
                Err(e) => Some(RunEnd::Template(format!("step {}: {e}", t.id))),
            },
            Step::Conditional(c) => match template::truthy(&c.condition, &self.ctx) {
                Ok(true) => self.steps(&c.then, depth + 1).await,
                Ok(false) => self.steps(&c.otherwise, depth + 1).await,
                Err(e) => Some(RunEnd::Template(e.to_string())),
            },
            Step::StopExecution(s) => {
                let fire = match &s.condition {
                    Some(cond) => match template::truthy(cond, &self.ctx) {
                        Ok(b) => b,
                        Err(e) => return Some(RunEnd::Template(e.to_string())),
                    },
                    None => true,
                };
                if !fire {
                    return None;
                }
                let message =
                    template::render_str(&s.message, &self.ctx).unwrap_or(s.message.clone());
                let class = match s.outcome {
                    StopOutcome::Failed => s
                        .error_class
                        .as_deref()
                        .and_then(ErrorClass::parse)
                        .unwrap_or(ErrorClass::ProviderFatal),
                };
                stop(class, message)
            }
            Step::PublishEvent(p) => match template::render_value(&p.data, &self.ctx) {
                Ok(data) => {
                    tracing::info!(step = %p.id, event = %p.event, data = %data, "bundle event");
                    self.events
                        .push(json!({"event": p.event, "step": p.id, "data": data}));
                    None
                }
                Err(e) => Some(RunEnd::Template(format!("step {}: {e}", p.id))),
            },
            Step::ForEach(f) => {
                let items = match template::eval(&f.items, &self.ctx) {
                    Ok(Value::Array(a)) => a,
                    Ok(Value::Null) => vec![],
                    Ok(other) => {
                        return Some(RunEnd::Template(format!(
                            "step {}: items is {}, not an array",
                            f.id,
                            kind(&other)
                        )));
                    }
                    Err(e) => return Some(RunEnd::Template(format!("step {}: {e}", f.id))),
                };
                if items.len() > f.max_items as usize {
                    return stop(
                        ErrorClass::ValidationError,
                        format!(
                            "{}: {} items, at most {} allowed",
                            f.items,
                            items.len(),
                            f.max_items
                        ),
                    );
                }
                let mut collected = Vec::new();
                for (i, item) in items.into_iter().enumerate() {
                    self.ctx[f.item.as_str()] = item;
                    self.ctx["loop_index"] = json!(i);
                    if let Some(end) = self.steps(&f.steps, depth + 1).await {
                        return Some(end);
                    }
                    if let Some(c) = &f.collect {
                        let v = match &self.ctx["vars"][c.as_str()] {
                            Value::Null => self.ctx["steps"][c.as_str()]["body"].clone(),
                            v => v.clone(),
                        };
                        collected.push(v);
                    }
                }
                if let Some(o) = self.ctx.as_object_mut() {
                    o.remove(f.item.as_str());
                    o.remove("loop_index");
                }
                self.ctx["vars"][f.id.as_str()] = Value::Array(collected);
                None
            }
            Step::FileHandler(fh) => {
                let url = match template::render_str(&fh.url, &self.ctx) {
                    Ok(u) => u.trim().to_string(),
                    Err(e) => return Some(RunEnd::Template(format!("step {}: {e}", fh.id))),
                };
                match fh.action {
                    FileAction::Fetch => {
                        let got = self
                            .tools
                            .media
                            .fetch(
                                &url,
                                fh.max_bytes,
                                &fh.accept,
                                Duration::from_secs(fh.timeout_seconds.max(1)),
                            )
                            .await;
                        match got {
                            Ok(v) => {
                                self.ctx["vars"][fh.id.as_str()] = v;
                                None
                            }
                            Err(e) => stop(e.class, format!("step {}: {}", fh.id, e.message)),
                        }
                    }
                    FileAction::Rehost => {
                        let Some(store) = self.tools.store else {
                            return stop(
                                ErrorClass::PipelineConfiguration,
                                format!("step {}: no media store is configured for rehost", fh.id),
                            );
                        };
                        let got = self
                            .tools
                            .media
                            .fetch_bytes(
                                &url,
                                fh.max_bytes,
                                &fh.accept,
                                Duration::from_secs(fh.timeout_seconds.max(1)),
                            )
                            .await;
                        let (mime, bytes) = match got {
                            Ok(x) => x,
                            // The output exists at the provider but cannot be copied: a
                            // provider-side problem, worth another try.
                            Err(e) => {
                                return stop(
                                    if e.class == ErrorClass::Timeout {
                                        ErrorClass::Timeout
                                    } else {
                                        ErrorClass::ProviderTransient
                                    },
                                    format!("step {}: rehost: {}", fh.id, e.message),
                                );
                            }
                        };
                        let size = bytes.len();
                        let execution = self.ctx["execution"]["id"]
                            .as_str()
                            .unwrap_or("")
                            .to_string();
                        match store.put(&execution, bytes, &mime).await {
                            Ok(stable) => {
                                self.rehosted.push((url.clone(), stable.clone()));
                                self.ctx["vars"][fh.id.as_str()] = json!({
                                    "url": stable, "source_url": url, "mime_type": mime, "bytes": size,
                                });
                                None
                            }
                            Err(e) => stop(
                                ErrorClass::ProviderTransient,
                                format!("step {}: storing re-hosted media failed: {e}", fh.id),
                            ),
                        }
                    }
                }
            }
            Step::TransformImage(t) => {
                let source =
                    match template::render_value(&Value::String(t.source.clone()), &self.ctx) {
                        Ok(v) => v,
                        Err(e) => return Some(RunEnd::Template(format!("step {}: {e}", t.id))),
                    };
                let limits = ImageLimits {
                    max_bytes: t.max_input_bytes,
                    max_pixels: t.max_input_pixels,
                };
                let resize = t.resize.clone();
                let format = t.format.unwrap_or(ImageFormat::Png);
                let quality = t.quality;
                // Decoding and encoding are CPU work: off the async threads.
                let done = tokio::task::spawn_blocking(move || {
                    let bytes = media::source_bytes(&source, limits.max_bytes)?;
                    media::transform(&bytes, resize.as_ref(), format, quality, limits)
                })
                .await;
                match done {
                    Ok(Ok(v)) => {
                        self.ctx["vars"][t.id.as_str()] = v;
                        None
                    }
                    Ok(Err(e)) => stop(e.class, format!("step {}: {}", t.id, e.message)),
                    Err(e) => Some(RunEnd::Template(format!("step {}: {e}", t.id))),
                }
            }
        }
    }

    async fn http(&mut self, h: &HttpRequestStep) -> Option<RunEnd> {
        let req = match build_request(h, &self.ctx) {
            Ok(r) => r,
            Err(e) => return Some(RunEnd::Template(format!("step {}: {e}", h.id))),
        };
        let adapter = self.tools.adapter;
        let bundle = self.tools.bundle;
        let classify =
            |r: &HttpResponse| crate::rules::apply_http(bundle, r, adapter.classify_error(r));
        let mut req = req;
        req.probe = self.tools.probe;
        let (result, records) = self.tools.transport.send(&h.id, req, &classify).await;
        self.calls.extend(records);
        match result {
            Ok(resp) => {
                self.ctx["steps"][h.id.as_str()] = resp.to_value();
                let ok = resp.is_success() && !adapter.is_error_answer(&resp);
                self.responses.insert(h.id.clone(), resp.clone());
                if !ok {
                    return Some(RunEnd::HttpFailed {
                        step: h.id.clone(),
                        response: resp,
                    });
                }
                self.last_http = Some(h.id.clone());
                None
            }
            Err(error) => Some(RunEnd::Transport {
                step: h.id.clone(),
                error,
            }),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn build_request(h: &HttpRequestStep, ctx: &Value) -> Result<HttpRequest, TemplateError> {
    let url = template::render_str(&h.url, ctx)?;
    let mut headers = Vec::new();
    for (k, v) in &h.headers {
        headers.push((k.clone(), template::render_str(v, ctx)?));
    }
    let mut query = Vec::new();
    for (k, v) in &h.query {
        let rendered = template::render_value(&Value::String(v.clone()), ctx)?;
        match rendered {
            Value::Null => {}
            Value::String(s) => query.push((k.clone(), s)),
            other => query.push((k.clone(), other.to_string())),
        }
    }
    let body = if let Some(t) = &h.json {
        RequestBody::Json(template::render_value(t, ctx)?)
    } else if let Some(fields) = &h.multipart {
        let mut out = Vec::new();
        for (k, v) in fields {
            match template::render_value(&Value::String(v.clone()), ctx)? {
                Value::Null => {}
                Value::String(s) => out.push((k.clone(), crate::http::Part::Text(s))),
                Value::Object(m) if m.contains_key("base64") => {
                    let value = Value::Object(m);
                    let bytes = media::source_bytes(&value, u64::MAX)
                        .map_err(|e| TemplateError(format!("multipart {k}: {}", e.message)))?;
                    let mime = value["mime_type"]
                        .as_str()
                        .unwrap_or("application/octet-stream")
                        .to_string();
                    out.push((k.clone(), crate::http::Part::File { bytes, mime }));
                }
                other => out.push((k.clone(), crate::http::Part::Text(other.to_string()))),
            }
        }
        RequestBody::Multipart(out)
    } else if let Some(b) = &h.binary {
        let data = template::render_value(&Value::String(b.data.clone()), ctx)?;
        let bytes = media::source_bytes(&data, u64::MAX)
            .map_err(|e| TemplateError(format!("binary body: {}", e.message)))?;
        let content_type = match &b.content_type {
            Some(t) => template::render_str(t, ctx)?,
            None => data["mime_type"]
                .as_str()
                .unwrap_or("application/octet-stream")
                .to_string(),
        };
        RequestBody::Binary {
            bytes,
            content_type,
        }
    } else {
        RequestBody::None
    };
    Ok(HttpRequest {
        method: h.method.as_str(),
        url,
        headers,
        query,
        body,
        timeout: Duration::from_secs(h.timeout_seconds.max(1)),
        probe: false,
    })
}
