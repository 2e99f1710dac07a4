//! The step engine: runs a bundle's step list against a context, the same way for every
//! provider. HTTP responses are captured at `steps.<id>`, transforms at `vars.<id>`; a non-2xx
//! response, a transport failure, a stop step or a template error ends the run, and the
//! adapter interprets how it ended.

use crate::format::{HttpRequestStep, Step, StopOutcome};
use crate::http::{HttpRequest, HttpResponse, Transport, TransportError};
use crate::template::{self, TemplateError};
use executor_lifecycle::{CallRecord, ErrorClass};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// How a run ended.
#[derive(Debug, Clone)]
pub enum RunEnd {
    /// Every step ran.
    Completed,
    /// A call answered non-2xx.
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
    /// A stop step ended it.
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

/// Runs `steps` with `ctx`; `classify` is the adapter's reading of a non-2xx answer (it
/// decides what the transport may retry).
pub async fn run(
    steps: &[Step],
    mut ctx: Value,
    transport: &Transport,
    classify: &(dyn Fn(&HttpResponse) -> executor_lifecycle::Failure + Sync),
) -> StepRun {
    let mut queue: VecDeque<Step> = steps.iter().cloned().collect();
    let mut responses = BTreeMap::new();
    let mut last_http = None;
    let mut calls = Vec::new();
    if !ctx["steps"].is_object() {
        ctx["steps"] = json!({});
    }
    if !ctx["vars"].is_object() {
        ctx["vars"] = json!({});
    }
    let end = loop {
        let Some(step) = queue.pop_front() else {
            break RunEnd::Completed;
        };
        match step {
            Step::HttpRequest(h) => {
                let req = match build_request(&h, &ctx) {
                    Ok(r) => r,
                    Err(e) => break RunEnd::Template(format!("step {}: {e}", h.id)),
                };
                let (result, records) = transport.send(&h.id, req, classify).await;
                calls.extend(records);
                match result {
                    Ok(resp) => {
                        ctx["steps"][h.id.as_str()] = resp.to_value();
                        let ok = resp.is_success();
                        responses.insert(h.id.clone(), resp.clone());
                        if !ok {
                            break RunEnd::HttpFailed {
                                step: h.id.clone(),
                                response: resp,
                            };
                        }
                        last_http = Some(h.id.clone());
                    }
                    Err(error) => {
                        break RunEnd::Transport {
                            step: h.id.clone(),
                            error,
                        };
                    }
                }
            }
            Step::TransformPayload(t) => match template::render_value(&t.template, &ctx) {
                Ok(v) => ctx["vars"][t.id.as_str()] = v,
                Err(e) => break RunEnd::Template(format!("step {}: {e}", t.id)),
            },
            Step::Conditional(c) => match template::truthy(&c.condition, &ctx) {
                Ok(true) => c.then.into_iter().rev().for_each(|s| queue.push_front(s)),
                Ok(false) => c
                    .otherwise
                    .into_iter()
                    .rev()
                    .for_each(|s| queue.push_front(s)),
                Err(e) => break RunEnd::Template(e.to_string()),
            },
            Step::StopExecution(s) => {
                let fire = match &s.condition {
                    Some(cond) => match template::truthy(cond, &ctx) {
                        Ok(b) => b,
                        Err(e) => break RunEnd::Template(e.to_string()),
                    },
                    None => true,
                };
                if fire {
                    let message =
                        template::render_str(&s.message, &ctx).unwrap_or(s.message.clone());
                    let class = match s.outcome {
                        StopOutcome::Failed => s
                            .error_class
                            .as_deref()
                            .and_then(ErrorClass::parse)
                            .unwrap_or(ErrorClass::ProviderFatal),
                    };
                    break RunEnd::Stopped { class, message };
                }
            }
        }
    };
    StepRun {
        end,
        responses,
        last_http,
        calls,
        ctx,
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
    let json = match &h.json {
        Some(t) => Some(template::render_value(t, ctx)?),
        None => None,
    };
    let multipart = match &h.multipart {
        Some(fields) => {
            let mut out = Vec::new();
            for (k, v) in fields {
                match template::render_value(&Value::String(v.clone()), ctx)? {
                    Value::Null => {}
                    Value::String(s) => out.push((k.clone(), s)),
                    other => out.push((k.clone(), other.to_string())),
                }
            }
            Some(out)
        }
        None => None,
    };
    Ok(HttpRequest {
        method: h.method.as_str(),
        url,
        headers,
        query,
        json,
        multipart,
        timeout: Duration::from_secs(h.timeout_seconds.max(1)),
    })
}
