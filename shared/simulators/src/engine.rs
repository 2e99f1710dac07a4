//! The data-driven core of the simulators added for issue 19 (Anthropic, Google, BFL,
//! Ideogram, Recraft, Kling, AssemblyAI, Deepgram, Hugging Face, Meshy and the
//! OpenAI-compatible hosts). A provider is described by a [`Spec`]: how it authenticates,
//! the headers it puts on every answer, and an [`Errors`] table — for each fault the
//! simulator can produce, the provider's documented HTTP status, JSON body and headers.
//! The handlers of a provider only parse its request and render its own objects; the
//! admission gate, the directives, the stats, the job store and the error answers are all
//! run from here, so the faults mean the same thing at every provider.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use crate::directives::{Directives, prompt_key};
use crate::faults::{Rejection, admit};
use crate::jobs::Job;
use crate::provider::Provider;
use crate::reply::{Auth, add_headers, header, json, parse_body};
use crate::state::{InflightGuard, SimState};
use crate::stats::Counter;

/// One documented error answer: status, JSON body (a literal; `{request_id}` is replaced by
/// the answer's request id) and extra headers.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// HTTP status (MiniMax: 200, the error is in the body).
    pub status: u16,
    /// JSON body as written in the provider's docs.
    pub body: &'static str,
    /// Extra headers (`retry-after`, …).
    pub headers: &'static [(&'static str, &'static str)],
}

impl Answer {
    /// The answer as a response.
    pub fn render(&self, request_id: &str) -> Response {
        let text = self.body.replace("{request_id}", request_id);
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers: Vec<(&'static str, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        json(status, &headers, &body)
    }
}

/// What a provider answers for each fault the simulator produces.
#[derive(Debug, Clone, Copy)]
pub struct Errors {
    /// No credential (or a credential starting with `invalid`).
    pub unauthorized: Answer,
    /// `sim:rate_limit=N`, the random rate, the concurrency cap.
    pub rate_limited: Answer,
    /// `sim:server_error=N`, the random rate, `sim:fail` on immediate calls.
    pub server_error: Answer,
    /// `sim:insufficient_quota`.
    pub quota: Answer,
    /// `sim:invalid` and malformed bodies.
    pub invalid: Answer,
    /// `sim:content_policy` where the provider rejects the request itself.
    pub content_policy: Answer,
    /// Unknown job or route.
    pub not_found: Answer,
    /// `sim:poll_error=N` on a status read.
    pub poll_error: Answer,
}

/// A provider of the data-driven family.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Which provider.
    pub provider: Provider,
    /// How it authenticates.
    pub auth: AuthScheme,
    /// Its error answers.
    pub errors: &'static Errors,
    /// Headers on every successful answer (rate-limit headers and the like).
    pub ok_headers: &'static [(&'static str, &'static str)],
    /// Name of the request-id header it sends, if any.
    pub request_id_header: Option<&'static str>,
    /// Directives only this provider knows (`sim:NAME` → its documented answer), e.g.
    /// Anthropic's `sim:overloaded` → 529 `overloaded_error`.
    pub extra: &'static [(&'static str, Answer)],
}

/// How a provider reads its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: <scheme> <key>` for one of the schemes.
    Authorization(&'static [&'static str]),
    /// `Authorization: <key>`, the raw key (AssemblyAI).
    RawAuthorization,
    /// A header of its own (`x-key`, `Api-Key`, `x-api-key`, `x-goog-api-key`).
    Header(&'static str),
    /// Checked by the provider module itself (Kling's JWT).
    Custom,
}

impl AuthScheme {
    /// Checks the request's credential (a key starting with `invalid` is a wrong key).
    pub fn check(self, headers: &HeaderMap) -> Auth {
        let key = match self {
            AuthScheme::Authorization(schemes) => crate::reply::credential(headers, schemes),
            AuthScheme::RawAuthorization => header(headers, "authorization")
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| k.rsplit(' ').next().unwrap_or(k).to_owned()),
            AuthScheme::Header(name) => header(headers, name)
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned),
            AuthScheme::Custom => return Auth::Ok,
        };
        match key {
            None => Auth::Missing,
            Some(k) if k.starts_with("invalid") => Auth::Invalid,
            Some(_) => Auth::Ok,
        }
    }
}

/// An admitted create call.
#[derive(Debug)]
pub struct Call {
    /// The request id of the answer.
    pub rid: String,
    /// The parsed body (JSON, or the form fields of a multipart body).
    pub body: Value,
    /// Directives found in it.
    pub directives: Directives,
    /// Keeps the immediate provider's in-flight count while the call is answered.
    pub guard: InflightGuard,
}

impl Spec {
    /// A fresh request id in the provider's style (Anthropic `req_011…`, Groq `req_…`,
    /// others a UUID).
    pub fn request_id(&self) -> String {
        match self.provider {
            Provider::Anthropic => format!("req_011{}", ulid::Ulid::new()),
            Provider::Groq => format!("req_{}", ulid::Ulid::new().to_string().to_lowercase()),
            _ => crate::clock::uuid_v4(),
        }
    }

    /// An error answer, counted as a create rejection.
    pub fn reject(&self, state: &SimState, answer: &Answer, rid: &str) -> Response {
        state.stats.bump(self.provider, Counter::CreateRejection);
        self.stamp(answer.render(rid), rid)
    }

    /// Adds the request-id header.
    pub fn stamp(&self, mut resp: Response, rid: &str) -> Response {
        if let Some(name) = self.request_id_header {
            add_headers(&mut resp, &[(name, rid.to_owned())]);
        }
        resp
    }

    /// A successful JSON answer with the provider's headers.
    pub fn ok(&self, status: StatusCode, rid: &str, body: &Value) -> Response {
        let headers: Vec<(&'static str, String)> = self
            .ok_headers
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        self.stamp(json(status, &headers, body), rid)
    }

    /// Adds the provider's success headers to a response built elsewhere (bytes).
    pub fn decorate(&self, mut resp: Response, rid: &str) -> Response {
        let headers: Vec<(&'static str, String)> = self
            .ok_headers
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        add_headers(&mut resp, &headers);
        self.stamp(resp, rid)
    }

    /// Checks auth only (status reads, downloads).
    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), Response> {
        match self.auth.check(headers) {
            Auth::Ok => Ok(()),
            Auth::Missing | Auth::Invalid => {
                let rid = self.request_id();
                Err(self.stamp(self.errors.unauthorized.render(&rid), &rid))
            }
        }
    }

    /// Auth, JSON body, directives, admission gate (rate limit, server error, capacity) and
    /// `sim:insufficient_quota`, in that order.
    pub async fn begin(
        &self,
        state: &Arc<SimState>,
        headers: &HeaderMap,
        raw: &[u8],
    ) -> Result<Call, Response> {
        let rid = self.request_id();
        if let Err(resp) = self.authorize(headers) {
            state.stats.bump(self.provider, Counter::CreateRejection);
            return Err(resp);
        }
        let Ok(body) = parse_body(raw) else {
            return Err(self.reject(state, &self.errors.invalid, &rid));
        };
        self.admit(state, body, rid).await
    }

    /// The gate for a body parsed by the caller (multipart forms, query strings).
    pub async fn admit(
        &self,
        state: &Arc<SimState>,
        body: Value,
        rid: String,
    ) -> Result<Call, Response> {
        let directives = Directives::scan_as(&body, self.provider);
        if let Err(rejection) = admit(state, self.provider, &directives).await {
            let answer = match rejection {
                Rejection::RateLimited | Rejection::Capacity => &self.errors.rate_limited,
                Rejection::ServerError => &self.errors.server_error,
            };
            return Err(self.stamp(answer.render(&rid), &rid));
        }
        if directives.insufficient_quota {
            return Err(self.reject(state, &self.errors.quota, &rid));
        }
        let (guard, _) = state.immediate_request(self.provider);
        Ok(Call {
            rid,
            body,
            directives,
            guard,
        })
    }

    /// `sim:invalid`, `sim:content_policy` and (for immediate calls) `sim:fail` as the
    /// provider's error answers; `None` when the call goes on.
    pub fn directed(&self, state: &SimState, call: &Call, immediate: bool) -> Option<Response> {
        let d = &call.directives;
        if let Some((_, answer)) = self.extra.iter().find(|(name, _)| d.has(name)) {
            return Some(self.reject(state, answer, &call.rid));
        }
        let answer = if d.invalid {
            &self.errors.invalid
        } else if d.content_policy && immediate {
            &self.errors.content_policy
        } else if d.fail && immediate {
            &self.errors.server_error
        } else {
            return None;
        };
        Some(self.reject(state, answer, &call.rid))
    }

    /// Records an accepted immediate call and sleeps its `sim:duration`.
    pub async fn accept(&self, state: &SimState, call: &Call) {
        state.stats.record_create(
            self.provider,
            &prompt_key(&call.body),
            state.inflight(self.provider),
        );
        if let Some(ms) = call.directives.duration_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// A new job for an admitted call (duration from `sim:duration` or the config).
    pub fn job(&self, state: &SimState, call: &Call, id: String, model: &str) -> Job {
        let mut job = Job::new(
            self.provider,
            id,
            call.body.clone(),
            call.directives.clone(),
            state.job_duration(call.directives.duration_ms),
        );
        job.model = model.to_owned();
        job
    }

    /// Stores a created job, records it and applies the after-create faults
    /// (`sim:hang_after_create`, `sim:drop_after_create`, `sim:error_after_create`): `Some`
    /// is the gateway's answer to send instead of the provider's.
    pub async fn created(
        &self,
        state: &Arc<SimState>,
        job: Job,
        render: Option<crate::driver::Render>,
    ) -> Option<Response> {
        let id = job.id.clone();
        let key = prompt_key(&job.input);
        let directives = job.directives.clone();
        state.jobs.insert(job);
        state
            .stats
            .record_create(self.provider, &key, state.inflight(self.provider));
        if let Some(render) = render {
            crate::driver::spawn(state, self.provider, &id, render);
        }
        if let Some(ms) = directives.hang_after_create_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        crate::faults::after_create(state, self.provider, &directives)
    }

    /// Reads job `id` for a status call: auth, 404, the poll counter and `sim:poll_error`.
    pub fn read(&self, state: &SimState, headers: &HeaderMap, id: &str) -> Result<Job, Response> {
        self.authorize(headers)?;
        let rid = self.request_id();
        let Some(job) = state.jobs.get(self.provider, id) else {
            return Err(self.stamp(self.errors.not_found.render(&rid), &rid));
        };
        state.stats.bump(self.provider, Counter::Poll);
        if state.jobs.take_poll_error(self.provider, id) {
            return Err(self.stamp(self.errors.poll_error.render(&rid), &rid));
        }
        Ok(job)
    }

    /// Cancels job `id` (auth, 404, the cancel counter); returns the job after the cancel
    /// and whether it changed.
    pub fn cancel(
        &self,
        state: &SimState,
        headers: &HeaderMap,
        id: &str,
    ) -> Result<(Job, bool), Response> {
        self.authorize(headers)?;
        let rid = self.request_id();
        let changed = state
            .jobs
            .update(self.provider, id, |j| j.cancel(Instant::now()));
        let (Some(changed), Some(job)) = (changed, state.jobs.get(self.provider, id)) else {
            return Err(self.stamp(self.errors.not_found.render(&rid), &rid));
        };
        state.stats.bump(self.provider, Counter::Cancel);
        Ok((job, changed))
    }
}

/// A generated file's bytes served under `{base}/files/{id}/{name}`: the URL.
pub fn first_url(job: &Job) -> Option<String> {
    job.outputs.first().map(|f| f.url.clone())
}

/// A `(width, height)` parsed from `"WxH"` or `"W:H"`, else `default`.
pub fn size_of(text: Option<&str>, default: (u32, u32)) -> (u32, u32) {
    text.and_then(|s| s.split_once(['x', ':', '*']))
        .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)))
        .filter(|&(w, h): &(u32, u32)| w > 0 && h > 0)
        .unwrap_or(default)
}

/// A ratio such as `16:9` scaled so its longer side is `side` pixels.
pub fn ratio_to_size(text: Option<&str>, side: u32, default: (u32, u32)) -> (u32, u32) {
    let (w, h) = size_of(text, (0, 0));
    if w == 0 || h == 0 {
        return default;
    }
    if w >= 256 || h >= 256 {
        return (w, h);
    }
    let longest = w.max(h);
    (w * side / longest, h * side / longest)
}

/// A `multipart/form-data` body: its text fields as a JSON object (for the directives and
/// the handlers) and the total bytes of its file parts; `None` when it is not a form.
pub fn form_body(headers: &HeaderMap, raw: &[u8]) -> Option<(Value, usize)> {
    let content_type = header(headers, "content-type").unwrap_or_default();
    let parts = crate::multipart::parse(content_type, raw).ok()?;
    let mut fields = serde_json::Map::new();
    let mut file_bytes = 0;
    for p in &parts {
        match p.text() {
            Some(t) if !t.is_empty() => {
                fields.insert(p.name.clone(), Value::String(t.to_owned()));
            }
            Some(_) => {}
            None => file_bytes += p.data.len(),
        }
    }
    Some((Value::Object(fields), file_bytes))
}

/// The value of a JSON string field.
pub fn text<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ratios() {
        assert_eq!(size_of(Some("1024x768"), (1, 1)), (1024, 768));
        assert_eq!(size_of(Some("16:9"), (1, 1)), (16, 9));
        assert_eq!(size_of(Some("bogus"), (1, 1)), (1, 1));
        assert_eq!(ratio_to_size(Some("16:9"), 1024, (1, 1)), (1024, 576));
        assert_eq!(ratio_to_size(Some("1x1"), 1024, (1, 1)), (1024, 1024));
        assert_eq!(ratio_to_size(None, 1024, (7, 7)), (7, 7));
    }
}
