//! The engine: ports plus configuration, and the entry points that are not queue-driven —
//! accepting an execution, canceling it, receiving a provider callback, reconciling.

use crate::blobs;
use crate::config::LifecycleConfig;
use crate::crash::{CrashInjector, CrashPoint};
use crate::keys;
use crate::model::{Effect, ExecutionRequest, Guard, Message, QueueName, TransitionRecord};
use crate::ports::{
    BlobStore, Clock, EventSink, GuardStore, IdempotencyItem, InflightLimiter, Inserted, Queue,
    StoreError, WebhookSender,
};
use crate::provider::{Catalog, ModelDriver};
use crate::status::Status;
use crate::taxonomy::Failure;
use crate::transitions::{Event, IllegalTransition};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The ports an engine runs on.
#[derive(Clone)]
pub struct Ports {
    /// Blob store.
    pub blobs: Arc<dyn BlobStore>,
    /// Guard/index store.
    pub guards: Arc<dyn GuardStore>,
    /// Queues.
    pub queue: Arc<dyn Queue>,
    /// Inflight limiter.
    pub limiter: Arc<dyn InflightLimiter>,
    /// Downstream outcome sink.
    pub events: Arc<dyn EventSink>,
    /// Customer webhook delivery.
    pub webhooks: Arc<dyn WebhookSender>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// Models.
    pub catalog: Arc<dyn Catalog>,
}

/// Why an engine entry point failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request is invalid (4xx); nothing was written.
    #[error("{0}")]
    Invalid(Failure),
    /// No such execution (or not the caller's).
    #[error("execution not found")]
    NotFound,
    /// The idempotency key was used for a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyConflict,
    /// The request conflicts with the state of what it names (409), e.g. an execution that
    /// has as many reruns as it may have.
    #[error("{0}")]
    Conflict(String),
    /// The estimated cost does not fit a budget of the tenant (402); nothing was written.
    #[error(transparent)]
    BudgetExceeded(#[from] crate::budget::BudgetRefusal),
    /// A callback failed verification.
    #[error("callback rejected: {0}")]
    Unauthorized(Failure),
    /// The backend failed; retry.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fault injected by a test.
    #[error("injected crash at {0:?}")]
    Crash(CrashPoint),
    /// A bug: an action asked for a transition the table refuses.
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
}

/// A create request, as the API parsed it.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// Model id.
    pub model: String,
    /// Input (validated against the model's schema).
    pub input: Value,
    /// Customer webhook for the outcome.
    pub webhook_url: Option<String>,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// Requested maximum duration (bounded by the model's).
    pub max_duration_seconds: Option<u64>,
    /// The execution this one reruns ([`Engine::rerun`]).
    pub rerun_of: Option<String>,
    /// The batch item this execution is ([`Engine::create_batch`]).
    pub batch: Option<crate::model::BatchMember>,
    /// Models to fall back on, in order, each with its input mapping ([`crate::fallback`]).
    pub fallbacks: Vec<crate::fallback::Target>,
    /// Times a failed job is run again on the same model, for every model of the chain
    /// (absent: each model's bundle `limits.job_retries`).
    pub retries: Option<u32>,
}

/// What a valid create request resolves to.
pub(crate) struct Checked {
    pub(crate) spec: crate::provider::ModelSpec,
    pub(crate) input: Value,
    pub(crate) max_duration_ms: u64,
    /// The model's estimate of the input's cost (micro-dollars): what a budget reserves.
    pub(crate) estimate_usd_micros: i64,
}

/// An accepted execution.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Its guard right after acceptance (or as found, for a replay).
    pub guard: Guard,
    /// True if an earlier request with the same idempotency key created it.
    pub replayed: bool,
}

/// What the reconciler did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReconcileReport {
    /// Executions examined.
    pub examined: usize,
    /// Pending outboxes applied.
    pub outboxes_applied: usize,
    /// Messages re-sent for overdue executions.
    pub redriven: usize,
    /// Ids touched.
    pub execution_ids: Vec<String>,
    /// Executions that could not be re-driven in this pass, with the reason. The pass goes on
    /// past each one; each is tried again with backoff.
    #[serde(default)]
    pub failed: Vec<ReconcileFailure>,
    /// Executions skipped in this pass because their backoff after earlier failures has not
    /// run out (parked after [`RECONCILE_PARK_AFTER`] failures in a row: tried once per
    /// [`RECONCILE_BACKOFF_MAX_MS`]).
    #[serde(default)]
    pub backing_off: Vec<ReconcileFailure>,
    /// Executions that had failed in earlier passes and reconciled fine in this one (their
    /// failure record is removed: no longer parked).
    #[serde(default)]
    pub recovered: Vec<String>,
}

/// One execution the reconciler could not re-drive.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReconcileFailure {
    /// The execution.
    pub execution_id: String,
    /// Why (the last error).
    pub reason: String,
    /// Failures in a row so far.
    pub failures: u32,
    /// True once it failed [`RECONCILE_PARK_AFTER`] times in a row.
    pub parked: bool,
}

/// Failures in a row after which an execution is parked: reported so, and a pile of
/// `GET /v1/failures` (`executor failures`) until it reconciles fine.
pub const RECONCILE_PARK_AFTER: u32 = 5;
/// The longest backoff between two reconcile tries of one failing execution (scaled by
/// `time_scale`).
pub const RECONCILE_BACKOFF_MAX_MS: i64 = 15 * 60 * 1000;

/// The lifecycle engine.
pub struct Engine {
    pub(crate) ports: Ports,
    pub(crate) config: LifecycleConfig,
    pub(crate) crash: Option<Arc<dyn CrashInjector>>,
    pub(crate) observer: Option<Arc<dyn crate::ports::Observer>>,
    /// Request blobs are write-once, so a copy can be kept: a warm worker polling the same
    /// execution again reads its request once (one storage read saved per step).
    requests: std::sync::Mutex<lru::LruCache<String, ExecutionRequest>>,
}

/// Request blobs kept in memory per engine.
const REQUEST_CACHE_ENTRIES: usize = 512;

impl Engine {
    /// An engine over `ports`.
    pub fn new(ports: Ports, config: LifecycleConfig) -> Engine {
        Engine {
            ports,
            config,
            crash: None,
            observer: None,
            requests: std::sync::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(REQUEST_CACHE_ENTRIES)
                    .unwrap_or(std::num::NonZeroUsize::MIN),
            )),
        }
    }

    /// Reports every committed transition to `observer` (metrics).
    pub fn with_observer(mut self, observer: Arc<dyn crate::ports::Observer>) -> Engine {
        self.observer = Some(observer);
        self
    }

    /// Installs a crash injector (tests only).
    pub fn with_crash_injector(mut self, injector: Arc<dyn CrashInjector>) -> Engine {
        self.crash = Some(injector);
        self
    }

    /// The ports.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The configuration.
    pub fn config(&self) -> &LifecycleConfig {
        &self.config
    }

    pub(crate) fn now(&self) -> i64 {
        self.ports.clock.now_ms()
    }

    pub(crate) fn check_crash(&self, point: CrashPoint, id: &str) -> Result<(), EngineError> {
        match &self.crash {
            Some(c) if c.should_crash(point, id) => Err(EngineError::Crash(point)),
            _ => Ok(()),
        }
    }

    pub(crate) fn driver(&self, model: &str) -> Result<Arc<dyn ModelDriver>, Failure> {
        self.ports.catalog.get(model).ok_or_else(|| {
            Failure::new(
                crate::taxonomy::ErrorClass::PipelineConfiguration,
                format!("model {model} is no longer configured"),
            )
        })
    }

    /// The callback URL a provider should call for an execution.
    pub fn callback_url(&self, provider: &str, id: &str) -> String {
        self.callback_url_at(provider, id, 0)
    }

    /// The callback URL of a chain's step: the first step's is [`Engine::callback_url`], a
    /// later one's names its step (`?step=N`), so that a lookup by callback URL finds this
    /// attempt's job and not an earlier one's, and a late callback of an earlier attempt is
    /// told apart.
    pub fn callback_url_at(&self, provider: &str, id: &str, step: u32) -> String {
        let base = format!(
            "{}/v1/webhooks/{}/{}",
            self.config.public_base_url.trim_end_matches('/'),
            provider,
            id
        );
        if step == 0 {
            base
        } else {
            format!("{base}?step={step}")
        }
    }

    /// Accepts an execution: validates, writes the request blob, inserts version 0 with the
    /// first message in its outbox, applies the outbox. Nothing is written if validation fails.
    ///
    /// `inline` says the caller will run the submit in the request path right away (immediate
    /// models): no submit message is sent, and the execution is due past the submit timeout
    /// (the reconciler re-drives it if the caller dies first).
    pub async fn create(
        &self,
        tenant: &str,
        req: CreateRequest,
        inline: bool,
    ) -> Result<Accepted, EngineError> {
        let hash = request_hash(&req);
        let key = req.idempotency_key.clone();
        if let Some(key) = &key
            && (key.is_empty() || key.len() > 255)
        {
            return Err(EngineError::Invalid(Failure::validation(
                "/headers/idempotency-key",
                "Idempotency-Key must be 1 to 255 characters",
            )));
        }
        // No read first: the insert is conditional on the key, and a key taken answers with
        // the execution it names. A request refused before the insert (invalid now, over
        // budget) looks the key up then: a retry of an accepted request replays, another
        // request under the key is a conflict, whatever the checks say today.
        match self.create_new(tenant, req, inline, &hash).await {
            Err(
                e @ (EngineError::Invalid(_)
                | EngineError::BudgetExceeded(_)
                | EngineError::Conflict(_)
                | EngineError::NotFound),
            ) => match &key {
                Some(key) => match self.ports.guards.find_idempotency(tenant, key).await? {
                    Some(item) => self.replay(item, &hash).await,
                    None => Err(e),
                },
                None => Err(e),
            },
            r => r,
        }
    }

    async fn create_new(
        &self,
        tenant: &str,
        req: CreateRequest,
        inline: bool,
        hash: &str,
    ) -> Result<Accepted, EngineError> {
        let hash = hash.to_string();
        // Uploaded files named by id become their content URLs (the hash above is of the
        // request as sent, so a retry with the same key and body replays).
        let mut req = self.expand_alias(req).map_err(EngineError::Invalid)?;
        req.input = self
            .resolve_files(tenant, &req.model.clone(), std::mem::take(&mut req.input))
            .await?;
        let Checked {
            spec,
            input,
            max_duration_ms,
            estimate_usd_micros,
        } = self.check(&req).map_err(EngineError::Invalid)?;
        let (fallbacks, worst) = self
            .chain_of(&req, &spec, &input)
            .map_err(EngineError::Invalid)?;
        let now = self.now();
        // The most a chain can cost: its dearest step (failed attempts are not billed).
        let estimate_usd_micros = estimate_usd_micros.max(worst);
        let budget = self.budget_hold(tenant, &spec.id, estimate_usd_micros, now);
        let request = ExecutionRequest {
            id: keys::new_execution_id(),
            tenant: tenant.to_string(),
            model: spec.id.clone(),
            input,
            webhook_url: req.webhook_url.clone(),
            idempotency_key: req.idempotency_key.clone(),
            created_at_ms: now,
            max_duration_ms,
            fallbacks,
            retries: req.retries,
        };
        let mut guard = Guard::accepted(&request, &spec.provider, spec.shape);
        // A small request is kept in the guard item; a larger one is its blob.
        if crate::model::packed::pack(&request)?.len() <= crate::model::KEPT_IN_ITEM_MAX_BYTES {
            guard.request = Some(Box::new(request.clone()));
        } else {
            blobs::put_json(
                self.ports.blobs.as_ref(),
                &keys::request(&request.id),
                &request,
            )
            .await?;
            if inline {
                // The inline submit reads it right away.
                self.remember_request(&request);
            }
        }
        guard.rerun_of = req.rerun_of.clone();
        guard.batch = req.batch.clone();
        guard.budget = budget;
        guard.hot.chain = request.fallbacks.iter().map(|f| f.model.clone()).collect();
        let delay = if inline {
            self.config.scaled(spec.submit_timeout_ms) + self.config.watchdog_margin_ms
        } else {
            0
        };
        guard.next_due_ms = now + delay as i64;
        guard.history = vec![TransitionRecord {
            version: 0,
            from: None,
            to: Status::Queued,
            event: Event::Accepted,
            at_ms: now,
            action: "accept".into(),
            calls: vec![],
            failure: None,
            detail: json!({"inline": inline, "max_duration_ms": max_duration_ms}),
        }];
        // Run inline, the submit needs no message: should the caller die before committing
        // it, the reconciler finds the execution overdue at `next_due_ms`.
        if !inline {
            guard.outbox = vec![Effect::Send {
                queue: QueueName::Submit,
                message: Message {
                    execution_id: request.id.clone(),
                    version: Some(0),
                },
                delay_ms: delay,
            }];
        }
        let idem = req.idempotency_key.as_ref().map(|key| IdempotencyItem {
            tenant: tenant.to_string(),
            key: key.clone(),
            execution_id: request.id.clone(),
            request_hash: hash.clone(),
        });
        match self.ports.guards.insert(&guard, idem.as_ref()).await? {
            Inserted::Created => {}
            Inserted::IdempotencyKeyTaken(item) => return self.replay(item, &hash).await,
            Inserted::BudgetExceeded(refusal) => return Err(refusal.into()),
        }
        if let Some(observer) = &self.observer
            && let Some(record) = guard.history.first()
        {
            observer.committed(&guard, record);
        }
        // Accepted from here on: the guard is committed. A failure to apply its outbox (the
        // submit message not sent) is the reconciler's to re-drive, never the client's to
        // retry — a retry without an Idempotency-Key would run a second execution.
        let guard = match self.roll_forward(guard.clone()).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(execution_id = %guard.id, error = %e, "accepted; its first message is left to the reconciler");
                guard
            }
        };
        Ok(Accepted {
            guard,
            replayed: false,
        })
    }

    /// Validates a create request without writing anything: the model exists, the input fits
    /// its schema, the webhook URL is allowed, the duration is sane. The failure names the
    /// field as a JSON pointer into the create body.
    pub(crate) fn check(&self, req: &CreateRequest) -> Result<Checked, Failure> {
        let driver = self.ports.catalog.get(&req.model).ok_or_else(|| {
            Failure::validation(
                "/model",
                format!("unknown model '{}'; GET /v1/models lists them", req.model),
            )
        })?;
        let spec = driver.spec().clone();
        let input = driver.validate(&req.input)?;
        if let Some(url) = &req.webhook_url
            && let Err(why) = self.config.webhook_targets.check_url(url)
        {
            return Err(Failure::validation(
                "/webhook_url",
                format!("webhook_url is refused: {why}"),
            ));
        }
        let max_duration_ms = match req.max_duration_seconds {
            Some(0) => {
                return Err(Failure::validation(
                    "/max_duration_seconds",
                    "max_duration_seconds must be at least 1",
                ));
            }
            Some(s) => s.saturating_mul(1000).min(spec.max_duration_ms),
            None => spec.max_duration_ms,
        };
        let estimate_usd_micros = driver.estimate(&input).provider_usd_micros;
        Ok(Checked {
            spec,
            input,
            max_duration_ms,
            estimate_usd_micros,
        })
    }

    /// A create of an alias: its first model, with the others as fallbacks (an alias already
    /// is a chain: naming `fallbacks` too is refused). Other creates as they are.
    pub(crate) fn expand_alias(&self, mut req: CreateRequest) -> Result<CreateRequest, Failure> {
        if self.ports.catalog.get(&req.model).is_some() {
            return Ok(req);
        }
        let Some(models) = self.config.aliases.get(&req.model) else {
            return Ok(req);
        };
        if !req.fallbacks.is_empty() {
            return Err(Failure::validation(
                "/fallbacks",
                format!(
                    "{} is an alias of the chain {}: it takes no fallbacks of its own",
                    req.model,
                    models
                        .iter()
                        .map(|t| t.model.as_str())
                        .collect::<Vec<_>>()
                        .join(" -> ")
                ),
            ));
        }
        let Some((first, rest)) = models.split_first() else {
            return Err(Failure::validation(
                "/model",
                format!("alias {} names no model", req.model),
            ));
        };
        req.model = first.model.clone();
        req.input = first.apply(&req.input);
        req.fallbacks = rest.to_vec();
        Ok(req)
    }

    /// The fallback steps of a create: each model known, not repeated, and the request's
    /// input mapped to it (the fields its schema has) and valid for it; the failure names the
    /// step (`/fallbacks/{i}`), the model and the field. Each model is followed by its
    /// retries (the same model again: [`crate::fallback`]). Also the dearest step's estimate.
    pub(crate) fn chain_of(
        &self,
        req: &CreateRequest,
        spec: &crate::provider::ModelSpec,
        input: &Value,
    ) -> Result<(Vec<crate::model::FallbackStep>, i64), Failure> {
        if req.fallbacks.len() > crate::fallback::MAX_FALLBACKS {
            return Err(Failure::validation(
                "/fallbacks",
                format!(
                    "at most {} fallback models (got {})",
                    crate::fallback::MAX_FALLBACKS,
                    req.fallbacks.len()
                ),
            ));
        }
        if let Some(n) = req.retries
            && n > crate::fallback::MAX_RETRIES
        {
            return Err(Failure::validation(
                "/retries",
                format!(
                    "at most {} retries of a model (got {n})",
                    crate::fallback::MAX_RETRIES
                ),
            ));
        }
        let retries_of = |spec: &crate::provider::ModelSpec| {
            req.retries
                .unwrap_or(spec.job_retries)
                .min(crate::fallback::MAX_RETRIES)
        };
        let mut steps = Vec::new();
        let repeat =
            |steps: &mut Vec<crate::model::FallbackStep>, model: &str, input: &Value, n| {
                for _ in 0..n {
                    steps.push(crate::model::FallbackStep {
                        model: model.to_string(),
                        input: input.clone(),
                    });
                }
            };
        repeat(&mut steps, &spec.id, input, retries_of(spec));
        let mut worst = 0;
        let mut seen = vec![spec.id.clone()];
        for (i, target) in req.fallbacks.iter().enumerate() {
            let model = &target.model;
            let at = format!("/fallbacks/{i}");
            let driver = self.ports.catalog.get(model).ok_or_else(|| {
                Failure::validation(
                    &at,
                    format!("unknown fallback model '{model}'; GET /v1/models lists them"),
                )
            })?;
            if seen.contains(&driver.spec().id) {
                return Err(Failure::validation(
                    &at,
                    format!(
                        "{model} is already in the chain: each model once (`retries` runs a model again)"
                    ),
                ));
            }
            seen.push(driver.spec().id.clone());
            if let Some(to) = target.unknown_rename(&driver.spec().input_schema) {
                return Err(Failure::validation(
                    &at,
                    format!("fallback {model} has no input field '{to}' to rename to"),
                ));
            }
            let mapped = target.map(&req.input, &driver.spec().input_schema);
            let input = driver.validate(&mapped).map_err(|f| {
                Failure::validation(
                    &at,
                    format!(
                        "the input cannot run on fallback {model}: {} ({})",
                        f.message,
                        f.field.as_deref().unwrap_or("/input")
                    ),
                )
            })?;
            worst = worst.max(driver.estimate(&input).provider_usd_micros);
            let id = driver.spec().id.clone();
            repeat(&mut steps, &id, &input, 1 + retries_of(driver.spec()));
        }
        Ok((steps, worst))
    }

    /// What a create of `model` by `tenant` at `now` reserves: the estimate on the budget item
    /// of every rule that applies (`None` when none does).
    pub(crate) fn budget_hold(
        &self,
        tenant: &str,
        model: &str,
        estimate_usd_micros: i64,
        now: i64,
    ) -> Option<crate::budget::BudgetHold> {
        let lines: Vec<_> = self
            .config
            .budgets
            .iter()
            .filter(|r| r.applies(tenant, model))
            .map(|r| r.line_at(now))
            .collect();
        (!lines.is_empty()).then(|| crate::budget::BudgetHold {
            lines,
            reserved_usd_micros: estimate_usd_micros.max(0),
            settled: None,
        })
    }

    /// What a create of `req` by `tenant` would cost, by the model's pricing applied to the
    /// validated input, the most its fallback chain can cost (its dearest step: failed
    /// attempts are not billed), which is what it reserves, and the tenant's budgets it would
    /// reserve on (each with whether that fits it now). Writes nothing.
    pub async fn estimate(
        &self,
        tenant: &str,
        req: CreateRequest,
    ) -> Result<
        (
            crate::model::Cost,
            i64,
            Vec<(crate::budget::BudgetState, bool)>,
        ),
        EngineError,
    > {
        let mut req = self.expand_alias(req).map_err(EngineError::Invalid)?;
        req.input = self
            .resolve_files(tenant, &req.model.clone(), std::mem::take(&mut req.input))
            .await?;
        let Checked { spec, input, .. } = self.check(&req).map_err(EngineError::Invalid)?;
        let (_, chain_worst) = self
            .chain_of(&req, &spec, &input)
            .map_err(EngineError::Invalid)?;
        let driver = self
            .ports
            .catalog
            .get(&spec.id)
            .ok_or(EngineError::NotFound)?;
        let cost = driver.estimate(&input);
        let worst = cost.provider_usd_micros.max(chain_worst);
        let now = self.now();
        let mut budgets = Vec::new();
        for state in self.budgets(tenant, now).await? {
            if state.line.model.as_ref().is_none_or(|m| *m == spec.id) {
                let fits = state.fits(worst);
                budgets.push((state, fits));
            }
        }
        Ok((cost, worst, budgets))
    }

    /// The tenant's budgets for the periods containing `at_ms`, as stored (an item nothing
    /// was reserved on yet is empty, with the rule's limit).
    pub async fn budgets(
        &self,
        tenant: &str,
        at_ms: i64,
    ) -> Result<Vec<crate::budget::BudgetState>, EngineError> {
        let mut out = Vec::new();
        for rule in self.config.budgets.iter().filter(|r| r.tenant == tenant) {
            let line = rule.line_at(at_ms);
            let mut state = self
                .ports
                .guards
                .budget(&line.key)
                .await?
                .unwrap_or_else(|| crate::budget::BudgetState::empty(line.clone()));
            // The limit in force is the configured one (a stored item keeps the limit of its
            // last reservation until the next one takes the new limit).
            state.line.limit_usd_micros = line.limit_usd_micros;
            out.push(state);
        }
        Ok(out)
    }

    async fn replay(&self, item: IdempotencyItem, hash: &str) -> Result<Accepted, EngineError> {
        if item.request_hash != hash {
            return Err(EngineError::IdempotencyConflict);
        }
        let guard = self
            .ports
            .guards
            .get(&item.execution_id)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "idempotency item points at missing {}",
                    item.execution_id
                ))
            })?;
        Ok(Accepted {
            guard,
            replayed: true,
        })
    }

    /// A tenant's execution.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<Guard, EngineError> {
        match self.ports.guards.get(id).await? {
            Some(g) if g.tenant == tenant => Ok(g),
            _ => Err(EngineError::NotFound),
        }
    }

    /// A page of a tenant's executions, newest first (the query's tenant is forced to `tenant`).
    pub async fn list(
        &self,
        tenant: &str,
        query: &crate::ports::ListQuery,
    ) -> Result<Vec<Guard>, EngineError> {
        let mut q = query.clone();
        q.tenant = Some(tenant.to_string());
        Ok(self.ports.guards.list(&q).await?)
    }

    /// The stored request of an execution.
    pub async fn request(&self, id: &str) -> Result<Option<ExecutionRequest>, EngineError> {
        if let Some(r) = self.cached_request(id) {
            return Ok(Some(r));
        }
        match self.ports.guards.get(id).await? {
            Some(g) => self.request_of(&g).await,
            None => Ok(None),
        }
    }

    /// The immutable request of an execution whose guard is at hand: kept in the guard, or
    /// its blob.
    pub async fn request_of(&self, guard: &Guard) -> Result<Option<ExecutionRequest>, EngineError> {
        if let Some(r) = &guard.request {
            return Ok(Some((**r).clone()));
        }
        let id = guard.id.as_str();
        if let Some(r) = self.cached_request(id) {
            return Ok(Some(r));
        }
        let found: Option<ExecutionRequest> =
            blobs::get_json(self.ports.blobs.as_ref(), &keys::request(id)).await?;
        if let Some(r) = &found {
            self.remember_request(r);
        }
        Ok(found)
    }

    fn cached_request(&self, id: &str) -> Option<ExecutionRequest> {
        self.requests
            .lock()
            .ok()
            .and_then(|mut c| c.get(id).cloned())
    }

    fn remember_request(&self, r: &ExecutionRequest) {
        if let Ok(mut c) = self.requests.lock() {
            c.put(r.id.clone(), r.clone());
        }
    }

    /// The stored terminal result of an execution.
    pub async fn result(
        &self,
        guard: &Guard,
    ) -> Result<Option<crate::model::ResultRecord>, EngineError> {
        if let Some(r) = &guard.hot.result {
            return Ok(Some((**r).clone()));
        }
        match &guard.hot.result_key {
            Some(k) => Ok(blobs::get_json(self.ports.blobs.as_ref(), k).await?),
            None => Ok(None),
        }
    }

    /// Every committed transition record of an execution, in version order — including the
    /// record of a just-committed version whose outbox is still being applied.
    pub async fn transitions(&self, id: &str) -> Result<Vec<TransitionRecord>, EngineError> {
        /// A blob of records: one (written before the history was kept in the guard) or a
        /// batch.
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Stored {
            One(Box<TransitionRecord>),
            Batch(Vec<TransitionRecord>),
        }
        let mut out: Vec<TransitionRecord> = Vec::new();
        for key in self.ports.blobs.list(&keys::transitions_prefix(id)).await? {
            match blobs::get_json::<Stored>(self.ports.blobs.as_ref(), &key).await? {
                Some(Stored::One(r)) => out.push(*r),
                Some(Stored::Batch(rs)) => out.extend(rs),
                None => {}
            }
        }
        // What the guard holds: its history, and a batch or record its outbox has not
        // written yet.
        if let Some(guard) = self.ports.guards.get(id).await? {
            let mut held: Vec<TransitionRecord> = guard.history.clone();
            for effect in &guard.outbox {
                match effect {
                    Effect::Record { record } => held.push((**record).clone()),
                    Effect::Records { records } => held.extend(records.iter().cloned()),
                    _ => {}
                }
            }
            out.extend(held);
        }
        out.sort_by_key(|r| r.version);
        out.dedup_by_key(|r| r.version);
        Ok(out)
    }

    /// Provider jobs whose ids arrived after their submit was resolved (each canceled at the
    /// provider), oldest attempt first.
    pub async fn late_jobs(&self, id: &str) -> Result<Vec<crate::model::LateJob>, EngineError> {
        let mut out = Vec::new();
        for key in self.ports.blobs.list(&keys::late_jobs_prefix(id)).await? {
            if let Some(j) = blobs::get_json(self.ports.blobs.as_ref(), &key).await? {
                out.push(j);
            }
        }
        out.sort_by_key(|j: &crate::model::LateJob| j.attempt);
        Ok(out)
    }

    /// Requests cancellation: sets the flag and nudges the execution. Canceling a terminal
    /// execution changes nothing.
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<Guard, EngineError> {
        let guard = self.get(tenant, id).await?;
        if guard.status().is_terminal() {
            return Ok(guard);
        }
        self.ports.guards.request_cancel(id).await?;
        self.nudge(&guard, 0).await?;
        self.get(tenant, id).await
    }

    /// Receives a provider callback: verifies it, stores it write-once, records its id and
    /// nudges the execution. Duplicates are accepted and change nothing.
    pub async fn receive_callback(
        &self,
        provider: &str,
        id: &str,
        step: u32,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<bool, EngineError> {
        let guard = self
            .ports
            .guards
            .get(id)
            .await?
            .ok_or(EngineError::NotFound)?;
        if guard.provider != provider {
            return Err(EngineError::NotFound);
        }
        if step != guard.hot.step {
            // The URL names another step of the chain: a late callback of an attempt that
            // already ended (or one not yet begun). Nothing of it is stored.
            let f = Failure::new(
                crate::taxonomy::ErrorClass::CallbackFailure,
                format!(
                    "the callback is for step {step} of the chain; the execution is at step {}",
                    guard.hot.step
                ),
            );
            self.note_refused_callback(&guard, &f.to_string()).await;
            return Err(EngineError::Unauthorized(f));
        }
        let driver = self
            .driver(&guard.model)
            .map_err(EngineError::Unauthorized)?;
        let verified = match driver.verify_callback(headers, body, self.now()) {
            Ok(v) => v,
            Err(f) => {
                self.note_refused_callback(&guard, &f.to_string()).await;
                return Err(EngineError::Unauthorized(f));
            }
        };
        // A genuine signature proves the provider sent it, not that it is about this
        // execution's job: Replicate signs every webhook of an account with one secret.
        let Some(job) = driver.callback_job_id(&verified.payload) else {
            return Err(EngineError::Invalid(Failure::validation(
                "/body",
                "the callback body names no provider job: it is not a job payload",
            )));
        };
        if let Some(own) = &guard.hot.job_id
            && own != &job
        {
            let f = Failure::new(
                crate::taxonomy::ErrorClass::CallbackFailure,
                format!("the callback is about provider job {job}, not this execution's job {own}"),
            );
            self.note_refused_callback(&guard, &f.to_string()).await;
            return Err(EngineError::Unauthorized(f));
        }
        if guard.callbacks_received.len() >= crate::model::CALLBACKS_KEPT
            && !guard.callbacks_received.contains(&verified.callback_id)
        {
            let f = Failure::new(
                crate::taxonomy::ErrorClass::CallbackFailure,
                format!(
                    "the execution already holds {} callbacks; no more are stored",
                    crate::model::CALLBACKS_KEPT
                ),
            );
            self.note_refused_callback(&guard, &f.to_string()).await;
            return Err(EngineError::Unauthorized(f));
        }
        // A small body is kept beside the guard, recorded with its id in one write; a larger
        // one (or on a store that keeps none) is its blob, written before the id is recorded.
        let packed = blobs::encode(&verified.payload)?;
        let kept = if packed.len() <= crate::model::KEPT_IN_ITEM_MAX_BYTES {
            self.ports
                .guards
                .record_callback_with_body(id, &verified.callback_id, &packed)
                .await?
        } else {
            None
        };
        let new = match kept {
            Some(new) => new,
            None => {
                blobs::put_json(
                    self.ports.blobs.as_ref(),
                    &keys::callback(id, &verified.callback_id),
                    &verified.payload,
                )
                .await?;
                self.ports
                    .guards
                    .record_callback(id, &verified.callback_id)
                    .await?
            }
        };
        if new && !guard.status().is_terminal() {
            let delay = match guard.status() {
                Status::Submitted | Status::Running => 0,
                _ => self.config.nudge_retry_ms,
            };
            self.nudge(&guard, delay).await?;
        }
        Ok(new)
    }

    /// Notes a refused callback on the execution (explain shows it). Only the first
    /// [`crate::model::REJECTED_CALLBACKS_KEPT`] are kept; the rest are counted in the log
    /// and the metrics only, so a flood cannot grow the execution's record. Best effort: the
    /// refusal stands if the note cannot be written.
    pub(crate) async fn note_refused_callback(&self, guard: &Guard, reason: &str) {
        tracing::warn!(execution_id = %guard.id, provider = %guard.provider, reason, "callback refused");
        if let Some(observer) = &self.observer {
            observer.callback_refused(&guard.provider);
        }
        if guard.callbacks_rejected.len() >= crate::model::REJECTED_CALLBACKS_KEPT {
            return;
        }
        if let Err(e) = self
            .ports
            .guards
            .record_rejected_callback(&guard.id, self.now(), reason)
            .await
        {
            tracing::warn!(execution_id = %guard.id, error = %e, "could not note a refused callback");
        }
    }

    /// Sends a versionless message that advances whatever version is current.
    pub(crate) async fn nudge(&self, guard: &Guard, delay_ms: u64) -> Result<(), EngineError> {
        let msg = Message {
            execution_id: guard.id.clone(),
            version: None,
        };
        let body = serde_json::to_string(&msg).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.ports
            .queue
            .send(QueueName::for_status(guard.status()), &body, delay_ms)
            .await?;
        Ok(())
    }

    /// Delivers the parked outcome of a `finalized_degraded` execution again; on success it
    /// becomes `finalized`. Any other status changes nothing and is reported as such.
    pub async fn redrive(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<crate::actions::finalize::Redrive, EngineError> {
        let guard = self.get(tenant, id).await?;
        if guard.status() != Status::FinalizedDegraded {
            return Ok(crate::actions::finalize::Redrive::NotDegraded(
                guard.status(),
            ));
        }
        crate::actions::finalize::redrive(self, guard).await
    }

    /// Finds executions whose next step is overdue or whose outbox is pending, and re-drives
    /// them: applies the outbox, or re-sends the message for the current version. Each
    /// execution is reconciled on its own: one whose outbox cannot be applied (an event the
    /// sink refuses, a queue that refuses the message) is reported with its reason, counted,
    /// and retried with backoff, while the pass goes on with the others. Its failures are
    /// recorded durably beside its guard ([`crate::model::ReconcileFailures`]), so the count,
    /// the backoff and the parking survive a restart and show in the failure piles; the record
    /// is removed once it reconciles fine.
    pub async fn reconcile(&self) -> Result<ReconcileReport, EngineError> {
        let now = self.now();
        let due_before = now - self.config.reconcile_grace_ms as i64;
        let mut report = ReconcileReport::default();
        for guard in self.ports.guards.overdue(due_before, 1000).await? {
            report.examined += 1;
            let failing = guard.reconcile_failing().cloned();
            if let Some(f) = &failing
                && now < f.last_failure_ms + self.reconcile_backoff_ms(f.failures)
            {
                report.backing_off.push(ReconcileFailure::of(&guard.id, f));
                continue;
            }
            match self.reconcile_one(&guard).await {
                Ok(done) => {
                    if guard.reconcile_failures.is_some() {
                        self.reconcile_recovered(&guard).await;
                        if failing.is_some() {
                            report.recovered.push(guard.id.clone());
                        }
                    }
                    if let Some(redriven) = done {
                        if redriven {
                            report.redriven += 1;
                        } else {
                            report.outboxes_applied += 1;
                        }
                        report.execution_ids.push(guard.id.clone());
                    }
                }
                Err(e) => {
                    let record = crate::model::ReconcileFailures {
                        version: guard.version(),
                        failures: failing.as_ref().map_or(0, |f| f.failures) + 1,
                        first_failure_ms: failing.as_ref().map_or(now, |f| f.first_failure_ms),
                        last_failure_ms: now,
                        reason: e.to_string(),
                    };
                    // Best effort: a store that cannot take the record now loses one count,
                    // never the pass.
                    if let Err(w) = self
                        .ports
                        .guards
                        .set_reconcile_failures(&guard.id, Some(&record))
                        .await
                    {
                        tracing::warn!(execution_id = %guard.id, error = %w, "could not record a reconcile failure");
                    }
                    let failure = ReconcileFailure::of(&guard.id, &record);
                    tracing::warn!(execution_id = %guard.id, error = %e, failures = failure.failures, parked = failure.parked, "reconcile of one execution failed; the pass goes on");
                    if let Some(observer) = &self.observer {
                        observer.reconcile_failed(&guard.id, &failure.reason);
                    }
                    report.failed.push(failure);
                }
            }
        }
        Ok(report)
    }

    /// Re-drives one execution: `Some(false)` when its outbox was applied, `Some(true)` when
    /// its message was re-sent, `None` when there was nothing to do.
    async fn reconcile_one(&self, guard: &Guard) -> Result<Option<bool>, EngineError> {
        if !guard.outbox.is_empty() {
            self.roll_forward(guard.clone()).await?;
            return Ok(Some(false));
        }
        if guard.status().is_final() {
            return Ok(None);
        }
        let msg = Message {
            execution_id: guard.id.clone(),
            version: Some(guard.version()),
        };
        let body = serde_json::to_string(&msg).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.ports
            .queue
            .send(QueueName::for_status(guard.status()), &body, 0)
            .await?;
        Ok(Some(true))
    }

    /// The wait after `failures` failed tries in a row: 1 s, 2 s, 4 s, ... at most
    /// [`RECONCILE_BACKOFF_MAX_MS`], both scaled like every delay.
    fn reconcile_backoff_ms(&self, failures: u32) -> i64 {
        let max = self.config.scaled(RECONCILE_BACKOFF_MAX_MS as u64) as i64;
        (self.config.scaled(1_000) as i64)
            .saturating_mul(1 << failures.saturating_sub(1).min(20))
            .min(max)
    }

    /// Removes the failure record of an execution that reconciled fine (best effort: a record
    /// left behind is stale once the execution moves on, and is ignored).
    async fn reconcile_recovered(&self, guard: &Guard) {
        if let Err(e) = self
            .ports
            .guards
            .set_reconcile_failures(&guard.id, None)
            .await
        {
            tracing::warn!(execution_id = %guard.id, error = %e, "could not clear a reconcile failure record");
        } else if guard.reconcile_failing().is_some() {
            tracing::info!(execution_id = %guard.id, "reconciled after earlier failures; no longer parked");
        }
    }
}

impl ReconcileFailure {
    fn of(id: &str, record: &crate::model::ReconcileFailures) -> ReconcileFailure {
        ReconcileFailure {
            execution_id: id.to_string(),
            reason: record.reason.clone(),
            failures: record.failures,
            parked: record.failures >= RECONCILE_PARK_AFTER,
        }
    }
}

/// Hash of what makes two create requests "the same" for idempotency.
fn request_hash(req: &CreateRequest) -> String {
    let mut canonical = json!({
        "model": req.model,
        "input": req.input,
        "webhook_url": req.webhook_url,
        "max_duration_seconds": req.max_duration_seconds,
    });
    // Only when set, so the hashes of plain creates stay what they were.
    if let Some(of) = &req.rerun_of {
        canonical["rerun_of"] = json!(of);
    }
    if let Some(b) = &req.batch {
        canonical["batch"] = json!({"id": b.id, "index": b.index});
    }
    if !req.fallbacks.is_empty() {
        canonical["fallbacks"] = json!(req.fallbacks);
    }
    if let Some(n) = req.retries {
        canonical["retries"] = json!(n);
    }
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}
