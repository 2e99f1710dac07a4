//! `BundleDriver`: a bundle plus its adapter, as the lifecycle's provider port. Submit, poll
//! and cancel run the bundle's step lists; the adapter interprets how they ended.

use crate::adapters::{Adapter, CallbackKeys};
use crate::engine::{self, RunEnd, StepRun};
use crate::format::{AmbiguousSubmit, Bundle, BundleShape};
use crate::http::{Transport, TransportError};
use crate::pricing;
use async_trait::async_trait;
use executor_lifecycle::{
    AmbiguousPolicy, CallContext, CallbackVerdict, Cost, ErrorClass, Failure, JobCreation,
    ModelDriver, ModelSpec, PollOutcome, PollPolicy, ProviderResult, Reply, Shape, SubmitOutcome,
    VerifiedCallback,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One model, driven by its bundle.
pub struct BundleDriver {
    bundle: Bundle,
    spec: ModelSpec,
    adapter: Arc<dyn Adapter>,
    transport: Transport,
    media: crate::media::MediaClient,
    store: Option<Arc<dyn crate::media::MediaStore>>,
    base_url: String,
    secrets: BTreeMap<String, String>,
    keys: CallbackKeys,
    validator: jsonschema::Validator,
    /// Credentials the bundle needs that the deployment lacks: every call fails without them.
    missing_credentials: Vec<String>,
}

/// The failure of a call that got no response.
pub fn transport_failure(e: &TransportError) -> Failure {
    match e {
        TransportError::Connect(m) => Failure::new(
            ErrorClass::ProviderUnavailable,
            format!("could not reach the provider: {m}"),
        ),
        TransportError::Timeout => {
            Failure::new(ErrorClass::Timeout, "the provider did not answer in time")
        }
        TransportError::Broken(m) => Failure::new(
            ErrorClass::ProviderTransient,
            format!("connection broke: {m}"),
        ),
        TransportError::CircuitOpen(h) => Failure::new(
            ErrorClass::ProviderUnavailable,
            format!("circuit breaker open for {h}; not sent"),
        )
        .with_code("circuit_open"),
        TransportError::Bulkhead(h) => Failure::new(
            ErrorClass::ProviderUnavailable,
            format!("too many concurrent calls to {h}; not sent"),
        )
        .with_code("bulkhead_full"),
    }
}

impl BundleDriver {
    /// A driver (the catalog checks the bundle before building one).
    #[allow(clippy::too_many_arguments)] // one internal caller: the catalog
    pub(crate) fn new(
        bundle: Bundle,
        adapter: Arc<dyn Adapter>,
        transport: Transport,
        media: crate::media::MediaClient,
        store: Option<Arc<dyn crate::media::MediaStore>>,
        base_url: String,
        secrets: BTreeMap<String, String>,
        keys: CallbackKeys,
        validator: jsonschema::Validator,
    ) -> BundleDriver {
        let shape = match bundle.shape {
            BundleShape::Immediate => Shape::Immediate,
            BundleShape::Polling => Shape::Polling,
            BundleShape::Callback => Shape::Callback,
        };
        let poll = bundle
            .polling
            .as_ref()
            .map(|p| PollPolicy {
                initial_delay_ms: p.initial_delay_ms,
                max_delay_ms: p.max_delay_ms,
                multiplier: p.multiplier,
            })
            .unwrap_or(PollPolicy {
                initial_delay_ms: 1_000,
                max_delay_ms: 10_000,
                multiplier: 1.5,
            });
        let spec = ModelSpec {
            id: bundle.id.clone(),
            provider: bundle.provider.clone(),
            shape,
            description: bundle.description.clone(),
            input_schema: bundle.input_schema.clone(),
            max_duration_ms: bundle.limits.max_duration_seconds * 1000,
            max_submit_attempts: bundle.limits.max_submit_attempts.max(1),
            job_retries: bundle.limits.job_retries,
            submit_timeout_ms: bundle.limits.submit_timeout_seconds * 1000,
            poll,
            safety_poll_ms: bundle
                .callback
                .as_ref()
                .map(|c| c.safety_poll_seconds * 1000)
                .unwrap_or(60_000),
            capacity: bundle.limits.capacity,
            ambiguous_submit: match bundle.ambiguous_submit {
                AmbiguousSubmit::Fail => AmbiguousPolicy::Fail,
                AmbiguousSubmit::Resubmit => AmbiguousPolicy::Resubmit,
            },
        };
        BundleDriver {
            bundle,
            spec,
            adapter,
            transport,
            media,
            store,
            base_url,
            secrets,
            keys,
            validator,
            missing_credentials: Vec::new(),
        }
    }

    /// The same driver lacking `names` (credentials the deployment does not have): submit,
    /// poll, cancel and lookup then fail with `pipeline_configuration` naming them, without
    /// calling the provider.
    pub(crate) fn with_missing_credentials(mut self, names: Vec<String>) -> BundleDriver {
        self.missing_credentials = names;
        self
    }

    /// Credentials the bundle needs that this deployment lacks.
    pub fn missing_credentials(&self) -> &[String] {
        &self.missing_credentials
    }

    /// The failure of every call of a bundle whose credentials are missing (an operator's
    /// misconfiguration: platform fault, not retried, counted under `pipeline_configuration`).
    fn missing_credentials_failure(&self) -> Option<Failure> {
        if self.missing_credentials.is_empty() {
            return None;
        }
        Some(
            Failure::new(
                ErrorClass::PipelineConfiguration,
                format!(
                    "provider {}: credential {} is not configured (neither a key of the deployment's secret, EXECUTOR_SECRET_ARN, nor an environment variable); no call was made",
                    self.bundle.provider,
                    self.missing_credentials.join(", ")
                ),
            )
            .with_code("missing_credential"),
        )
    }

    /// The bundle.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Whether the submit step `id` is a call that may create something at the provider
    /// (any HTTP method but GET, HEAD and OPTIONS).
    fn creates(&self, id: &str) -> bool {
        crate::engine::find_step(&self.bundle.steps.submit, id)
            .is_none_or(|method| !matches!(method, "GET" | "HEAD" | "OPTIONS"))
    }

    /// Whether an error answering a create certainly created nothing: a 4xx other than 408
    /// (the provider refused the request), a 2xx whose body the adapter reads as an error
    /// (MiniMax's `base_resp`: the provider's application answered, with no job), or a
    /// status the bundle cites the provider's documentation for. 5xx and 408 may follow a
    /// job the provider created (a gateway timing out in front of it, a worker dying after
    /// the insert).
    pub fn refusal(&self, status: u16) -> bool {
        (200..300).contains(&status)
            || ((400..500).contains(&status) && status != 408)
            || self.bundle.not_created.iter().any(|n| n.status == status)
            || crate::rules::not_created(&self.bundle, status)
    }

    /// Moves inline media out of a result at ingestion: binary outputs (OpenAI `b64_json`,
    /// Stability and ElevenLabs bytes) and text or JSON larger than
    /// [`INLINE_OUTPUT_MAX_BYTES`] are stored in the blob store and referenced by their stable
    /// URL, so no guard record, outbox, queue message, outcome event or API response carries
    /// them (a 1.5 MB image in the finalize commit exceeds DynamoDB's 400 KB item). The raw
    /// provider answer keeps what the provider sent. Without a store (bundle checks) the
    /// result is left as it is.
    async fn ingest(
        &self,
        execution: &str,
        mut result: ProviderResult,
    ) -> Result<ProviderResult, Failure> {
        let Some(store) = &self.store else {
            return Ok(result);
        };
        for o in &mut result.outputs {
            let Some(data) = &o.data else { continue };
            let binary = matches!(
                o.kind,
                executor_lifecycle::OutputKind::Image
                    | executor_lifecycle::OutputKind::Audio
                    | executor_lifecycle::OutputKind::Video
            );
            let (bytes, mime) = match data {
                Value::String(s) if binary => {
                    let (mime, b64) = match s
                        .strip_prefix("data:")
                        .and_then(|r| r.split_once(";base64,"))
                    {
                        Some((m, b)) => (m.to_string(), b),
                        None => (
                            o.mime_type
                                .clone()
                                .unwrap_or_else(|| "application/octet-stream".into()),
                            s.as_str(),
                        ),
                    };
                    use base64::Engine as _;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|e| {
                            Failure::new(
                                ErrorClass::ProviderFatal,
                                format!("the provider's inline {mime} is not base64: {e}"),
                            )
                        })?;
                    (bytes, mime)
                }
                Value::String(s) if s.len() > INLINE_OUTPUT_MAX_BYTES => (
                    s.clone().into_bytes(),
                    o.mime_type.clone().unwrap_or_else(|| "text/plain".into()),
                ),
                other if !binary && other.to_string().len() > INLINE_OUTPUT_MAX_BYTES => (
                    other.to_string().into_bytes(),
                    "application/json".to_string(),
                ),
                _ => continue,
            };
            let url = store.put(execution, bytes, &mime).await.map_err(|e| {
                Failure::new(
                    ErrorClass::ProviderTransient,
                    format!("storing an output failed: {e}"),
                )
            })?;
            o.url = Some(url);
            o.data = None;
            o.mime_type.get_or_insert(mime);
        }
        Ok(result)
    }

    fn context(&self, ctx: &CallContext) -> Value {
        json!({
            "input": ctx.request.input,
            "secrets": self.secrets,
            "base_url": self.base_url,
            "execution": {"id": ctx.request.id, "attempt": ctx.attempt},
            "job": {"id": ctx.job_id},
            "callback_url": ctx.callback_url,
            "model": {
                "id": self.bundle.id,
                "name": self.bundle.provider_model,
                "endpoint": self.bundle.endpoint,
                "params": if self.bundle.params.is_null() { json!({}) } else { self.bundle.params.clone() },
                "duration_input": self.bundle.duration_input,
            },
            "steps": {},
            "vars": {},
        })
    }

    async fn run(&self, steps: &[crate::format::Step], ctx: &CallContext) -> StepRun {
        let tools = engine::Tools {
            transport: &self.transport,
            media: &self.media,
            adapter: self.adapter.as_ref(),
            bundle: &self.bundle,
            store: self.store.as_deref(),
            probe: ctx.final_look,
        };
        engine::run(steps, self.context(ctx), tools).await
    }
}

/// Checks the input's media fields, the properties annotated `x-media` in the input schema
/// (`{kind: image|audio|video, max_bytes, max_pixels}`): a URL must be one the media policy lets
/// us fetch (no private, loopback or metadata address, no credentials, http(s) only); a
/// `data:` URI must decode within `max_bytes`, be of the kind, and (images) have at most
/// `max_pixels`. Arrays of such strings are checked item by item.
pub fn check_media(
    schema: &Value,
    input: &Value,
    at: &str,
    policy: executor_lifecycle::netguard::OutboundPolicy,
) -> Result<(), Failure> {
    let Some(props) = schema["properties"].as_object() else {
        return Ok(());
    };
    for (name, prop) in props {
        let Some(value) = input.get(name) else {
            continue;
        };
        let here = format!("{at}/{name}");
        if prop["type"] == "object" {
            check_media(prop, value, &here, policy)?;
            continue;
        }
        let (media, items) = match (&prop["x-media"], value) {
            (m, Value::Array(items)) if !m.is_object() && prop["items"]["x-media"].is_object() => (
                &prop["items"]["x-media"],
                items.iter().enumerate().collect::<Vec<_>>(),
            ),
            (m, v) if m.is_object() => (m, vec![(usize::MAX, v)]),
            _ => continue,
        };
        for (i, v) in items {
            let pointer = if i == usize::MAX {
                format!("/input{here}")
            } else {
                format!("/input{here}/{i}")
            };
            let Some(text) = v.as_str() else { continue };
            media_ok(media, text, policy).map_err(|why| {
                Failure::validation(pointer.clone(), format!("input{}: {why}", &pointer[6..]))
            })?;
        }
    }
    Ok(())
}

fn media_ok(
    media: &Value,
    text: &str,
    policy: executor_lifecycle::netguard::OutboundPolicy,
) -> Result<(), String> {
    let kind = media["kind"].as_str().unwrap_or("image");
    let max_bytes = media["max_bytes"].as_u64().unwrap_or(20 * 1024 * 1024);
    if text.starts_with("data:") {
        let (mime, bytes) =
            crate::media::decode_data_uri(text, max_bytes).map_err(|e| e.message)?;
        if !mime.starts_with(&format!("{kind}/")) {
            return Err(format!("a data URI of {mime}, expected {kind}/*"));
        }
        if kind == "image" {
            let (w, h, _) = crate::media::dimensions(&bytes).map_err(|e| e.message)?;
            if let Some(max) = media["max_pixels"].as_u64()
                && u64::from(w) * u64::from(h) > max
            {
                return Err(format!(
                    "image of {w}x{h} pixels is larger than {max} pixels"
                ));
            }
        }
        return Ok(());
    }
    policy.check_url(text).map(|_| ())
}

/// Points outputs at their re-hosted copies (the provider's URL stays in the raw response).
fn rehosted(mut result: ProviderResult, map: &[(String, String)]) -> ProviderResult {
    for o in &mut result.outputs {
        if let Some((_, stable)) = map.iter().find(|(src, _)| Some(src) == o.url.as_ref()) {
            o.url = Some(stable.clone());
        }
    }
    result
}

/// Inline text or JSON outputs larger than this go to the blob store too.
pub const INLINE_OUTPUT_MAX_BYTES: usize = 32 * 1024;

/// Applies top-level schema defaults to an input object.
fn apply_defaults(schema: &Value, input: &Value) -> Value {
    let mut out = input.clone();
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), out.as_object_mut()) {
        for (k, p) in props {
            if !obj.contains_key(k)
                && let Some(d) = p.get("default")
            {
                obj.insert(k.clone(), d.clone());
            }
        }
    }
    out
}

#[async_trait]
impl ModelDriver for BundleDriver {
    fn listing(&self) -> Value {
        let mut pricing = serde_json::to_value(&self.bundle.pricing).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut pricing {
            m.insert(
                "summary".into(),
                Value::String(crate::docs::pricing_summary(&self.bundle.pricing)),
            );
        }
        json!({
            "modality": self.bundle.modality.map(|m| m.as_str()),
            "pricing": pricing,
            "available": self.missing_credentials.is_empty(),
            "missing_credentials": self.missing_credentials,
            "docs_url": self.bundle.docs_url,
            "provider_model": self.bundle.provider_model,
        })
    }

    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn healthy(&self) -> bool {
        // The breaker the create call goes through: its URL's host and first path segment.
        let create = format!(
            "{}{}",
            self.base_url,
            self.bundle.endpoint.as_deref().unwrap_or("")
        );
        !self
            .transport
            .resilience()
            .is_open(&crate::http::breaker_key(&create))
    }

    fn validate(&self, input: &Value) -> Result<Value, Failure> {
        if !input.is_object() {
            return Err(Failure::validation("/input", "input must be a JSON object"));
        }
        let input = apply_defaults(&self.bundle.input_schema, input);
        if let Some(err) = self.validator.iter_errors(&input).next() {
            let mut pointer = format!("/input{}", err.instance_path);
            if let jsonschema::error::ValidationErrorKind::Required { property } = &err.kind {
                pointer = format!("{pointer}/{}", property.as_str().unwrap_or_default());
            }
            return Err(Failure::validation(
                pointer,
                format!("input{}: {err}", err.instance_path),
            ));
        }
        check_media(&self.bundle.input_schema, &input, "", self.media.policy())?;
        Ok(input)
    }

    async fn submit(&self, ctx: &CallContext) -> Reply<SubmitOutcome> {
        if let Some(failure) = self.missing_credentials_failure() {
            return Reply {
                outcome: SubmitOutcome::Rejected {
                    failure,
                    creation: JobCreation::NotCreated,
                    raw: Value::Null,
                },
                calls: vec![],
                events: vec![],
            };
        }
        let run = self.run(&self.bundle.steps.submit, ctx).await;
        let not_created = |failure: Failure, raw: Value| SubmitOutcome::Rejected {
            failure,
            creation: JobCreation::NotCreated,
            raw,
        };
        let outcome = match &run.end {
            RunEnd::Stopped { class, message } => {
                not_created(Failure::new(*class, message.clone()), Value::Null)
            }
            RunEnd::Template(m) => not_created(
                Failure::new(ErrorClass::PipelineConfiguration, m.clone()),
                Value::Null,
            ),
            RunEnd::Transport { error, step } => SubmitOutcome::Rejected {
                failure: transport_failure(error),
                creation: match error {
                    TransportError::Connect(_)
                    | TransportError::CircuitOpen(_)
                    | TransportError::Bulkhead(_) => JobCreation::NotCreated,
                    TransportError::Timeout | TransportError::Broken(_) if self.creates(step) => {
                        JobCreation::Unknown
                    }
                    TransportError::Timeout | TransportError::Broken(_) => JobCreation::NotCreated,
                },
                raw: Value::Null,
            },
            RunEnd::HttpFailed { response, step } => SubmitOutcome::Rejected {
                failure: crate::rules::apply_http(
                    &self.bundle,
                    response,
                    self.adapter.classify_error(response),
                ),
                creation: if self.creates(step) && !self.refusal(response.status) {
                    JobCreation::Unknown
                } else {
                    JobCreation::NotCreated
                },
                raw: response.body.clone(),
            },
            RunEnd::Completed => match (run.last_response(), self.spec.shape) {
                (None, _) => not_created(
                    Failure::new(
                        ErrorClass::PipelineConfiguration,
                        "submit steps made no call",
                    ),
                    Value::Null,
                ),
                (Some(resp), Shape::Immediate) => {
                    match self.adapter.normalize_immediate(resp, &run.ctx["input"]) {
                        Ok(result) => match self.ingest(&ctx.request.id, result).await {
                            Ok(result) => SubmitOutcome::Completed(result),
                            // The generation happened (and is paid): never submit again
                            // silently; the ambiguous-create policy decides.
                            Err(f) => SubmitOutcome::Rejected {
                                failure: f,
                                creation: JobCreation::Unknown,
                                raw: Value::Null,
                            },
                        },
                        Err(f) => not_created(f, resp.body.clone()),
                    }
                }
                (Some(resp), _) => match self.adapter.job_id(resp) {
                    Some(job_id) => SubmitOutcome::Created {
                        job_id,
                        raw: resp.body.clone(),
                    },
                    None => SubmitOutcome::Rejected {
                        failure: Failure::new(
                            ErrorClass::ProviderFatal,
                            "the provider's answer has no job id",
                        ),
                        creation: JobCreation::Unknown,
                        raw: resp.body.clone(),
                    },
                },
            },
        };
        Reply {
            outcome,
            calls: run.calls,
            events: run.events,
        }
    }

    async fn poll(&self, ctx: &CallContext) -> Reply<PollOutcome> {
        if let Some(failure) = self.missing_credentials_failure() {
            return Reply {
                outcome: PollOutcome::CallFailed(failure),
                calls: vec![],
                events: vec![],
            };
        }
        if self.bundle.steps.poll.is_empty() {
            // No call reads a job (`callback.no_status`, Deepgram): the callback is the only
            // result, and without one the execution times out at its deadline.
            return Reply {
                outcome: PollOutcome::Pending {
                    provider_status: "awaiting callback".into(),
                    progress: None,
                    started: false,
                },
                calls: vec![],
                events: vec![],
            };
        }
        let run = self.run(&self.bundle.steps.poll, ctx).await;
        let outcome = match self.adapter.interpret_poll(&run) {
            PollOutcome::CallFailed(f) => match &run.end {
                RunEnd::HttpFailed { response, .. } => {
                    PollOutcome::CallFailed(crate::rules::apply_http(&self.bundle, response, f))
                }
                _ => PollOutcome::CallFailed(f),
            },
            PollOutcome::Failed { failure, raw } => PollOutcome::Failed {
                failure: crate::rules::apply_job(&self.bundle, failure),
                raw,
            },
            PollOutcome::Succeeded(r) => {
                match self
                    .ingest(&ctx.request.id, rehosted(r, &run.rehosted))
                    .await
                {
                    Ok(r) => PollOutcome::Succeeded(r),
                    Err(f) => PollOutcome::CallFailed(f),
                }
            }
            other => other,
        };
        Reply {
            outcome,
            calls: run.calls,
            events: run.events,
        }
    }

    async fn cancel(&self, ctx: &CallContext) -> Reply<Result<(), Failure>> {
        if let Some(failure) = self.missing_credentials_failure() {
            return Reply {
                outcome: Err(failure),
                calls: vec![],
                events: vec![],
            };
        }
        if self.bundle.steps.cancel.is_empty() {
            return Reply {
                outcome: Err(Failure::new(
                    ErrorClass::ProviderFatal,
                    "the provider has no cancel call",
                )),
                calls: vec![],
                events: vec![],
            };
        }
        let run = self.run(&self.bundle.steps.cancel, ctx).await;
        let outcome = match &run.end {
            RunEnd::Completed => Ok(()),
            RunEnd::HttpFailed { response, .. } => Err(crate::rules::apply_http(
                &self.bundle,
                response,
                self.adapter.classify_error(response),
            )),
            RunEnd::Transport { error, .. } => Err(transport_failure(error)),
            RunEnd::Stopped { class, message } => Err(Failure::new(*class, message.clone())),
            RunEnd::Template(m) => Err(Failure::new(ErrorClass::PipelineConfiguration, m.clone())),
        };
        Reply {
            outcome,
            calls: run.calls,
            events: run.events,
        }
    }

    async fn lookup(&self, ctx: &CallContext) -> Reply<executor_lifecycle::LookupOutcome> {
        use executor_lifecycle::LookupOutcome;
        if let Some(failure) = self.missing_credentials_failure() {
            return Reply {
                outcome: LookupOutcome::Failed(failure),
                calls: vec![],
                events: vec![],
            };
        }
        let Some(lookup) = self
            .bundle
            .lookup
            .as_ref()
            .filter(|_| !self.bundle.steps.lookup.is_empty())
        else {
            return Reply {
                outcome: LookupOutcome::Unsupported,
                calls: vec![],
                events: vec![],
            };
        };
        let run = self.run(&self.bundle.steps.lookup, ctx).await;
        let outcome = match &run.end {
            RunEnd::Completed => match crate::template::render_str(&lookup.job_id, &run.ctx) {
                Ok(id) if !id.trim().is_empty() && id.trim() != "none" => {
                    LookupOutcome::Found(id.trim().to_string())
                }
                Ok(_) => LookupOutcome::NotFound,
                Err(e) => LookupOutcome::Failed(Failure::new(
                    ErrorClass::PipelineConfiguration,
                    format!("lookup.job_id: {e}"),
                )),
            },
            RunEnd::HttpFailed { response, .. } => LookupOutcome::Failed(crate::rules::apply_http(
                &self.bundle,
                response,
                self.adapter.classify_error(response),
            )),
            RunEnd::Transport { error, .. } => LookupOutcome::Failed(transport_failure(error)),
            RunEnd::Stopped { class, message } => {
                LookupOutcome::Failed(Failure::new(*class, message.clone()))
            }
            RunEnd::Template(m) => {
                LookupOutcome::Failed(Failure::new(ErrorClass::PipelineConfiguration, m.clone()))
            }
        };
        Reply {
            outcome,
            calls: run.calls,
            events: run.events,
        }
    }

    fn verify_callback(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        now_ms: i64,
    ) -> Result<VerifiedCallback, Failure> {
        self.adapter
            .verify_callback(&self.keys, headers, body, now_ms)
    }

    fn callback_job_id(&self, payload: &Value) -> Option<String> {
        self.adapter.callback_job_id(payload)
    }

    fn interpret_callback(&self, _ctx: &CallContext, payload: &Value) -> CallbackVerdict {
        // A failed job reported by a callback is classified by the same rules as a polled one.
        match self.adapter.interpret_callback(payload) {
            CallbackVerdict::Outcome(PollOutcome::Failed { failure, raw }) => {
                CallbackVerdict::Outcome(PollOutcome::Failed {
                    failure: crate::rules::apply_job(&self.bundle, failure),
                    raw,
                })
            }
            other => other,
        }
    }

    async fn store_outputs(
        &self,
        ctx: &CallContext,
        result: ProviderResult,
    ) -> Result<ProviderResult, Failure> {
        self.ingest(&ctx.request.id, result).await
    }

    fn cost(&self, result: &ProviderResult) -> Cost {
        pricing::compute(&self.bundle.pricing, result)
    }

    fn estimate(&self, input: &Value) -> Cost {
        pricing::estimate(
            &self.bundle.pricing,
            input,
            self.bundle.duration_input.as_deref(),
            &self.bundle.estimate,
        )
    }
}
