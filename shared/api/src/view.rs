//! The public JSON shape of an execution: status, normalized outputs, error with class and
//! provider detail, cost, timestamps. Built from the guard and the result blob.

use executor_lifecycle::{Cost, Failure, Guard, Output, ResultRecord, Status, Wait};
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};

/// RFC 3339 (UTC, milliseconds) of a ms timestamp.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

// ---------------------------------------------------------------------------------------------
// The public status: the one place the lifecycle's internal statuses are mapped to what a
// client sees (docs/api.md, "Statuses").
// ---------------------------------------------------------------------------------------------

/// An execution's status as clients see it. Once terminal it is the outcome and never changes
/// again; the lifecycle's finalization (outcome delivery) shows as `delivery`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PublicStatus {
    /// Accepted; waiting for its turn (or for provider capacity).
    Queued,
    /// Being submitted to the provider, or submitted and not yet running there.
    Starting,
    /// The provider is running it.
    Processing,
    /// Terminal: the provider produced the output.
    Succeeded,
    /// Terminal: failed; `error.class` says why.
    Failed,
    /// Terminal: canceled on request.
    Canceled,
    /// Terminal: exceeded its maximum duration.
    TimedOut,
}

impl PublicStatus {
    /// Every public status, in lifecycle order.
    pub const ALL: [PublicStatus; 7] = [
        PublicStatus::Queued,
        PublicStatus::Starting,
        PublicStatus::Processing,
        PublicStatus::Succeeded,
        PublicStatus::Failed,
        PublicStatus::Canceled,
        PublicStatus::TimedOut,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PublicStatus::Queued => "queued",
            PublicStatus::Starting => "starting",
            PublicStatus::Processing => "processing",
            PublicStatus::Succeeded => "succeeded",
            PublicStatus::Failed => "failed",
            PublicStatus::Canceled => "canceled",
            PublicStatus::TimedOut => "timed_out",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<PublicStatus> {
        PublicStatus::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// True for the outcomes (`succeeded`, `failed`, `canceled`, `timed_out`).
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            PublicStatus::Queued | PublicStatus::Starting | PublicStatus::Processing
        )
    }

    /// The public status of a guard: the internal status for work in progress, the outcome
    /// once terminal (whether or not it was delivered yet).
    pub fn of(g: &Guard) -> PublicStatus {
        PublicStatus::of_internal(
            g.status(),
            Some(g.hot.outcome.unwrap_or_else(|| legacy_outcome(g))),
        )
    }

    /// The public status of an internal status, given the outcome the execution reached (for
    /// the final statuses, which are not outcomes themselves).
    pub fn of_internal(status: Status, outcome: Option<Status>) -> PublicStatus {
        match status {
            Status::Queued => PublicStatus::Queued,
            Status::Submitting | Status::Submitted => PublicStatus::Starting,
            Status::Running => PublicStatus::Processing,
            Status::Succeeded => PublicStatus::Succeeded,
            Status::Failed => PublicStatus::Failed,
            Status::Canceled => PublicStatus::Canceled,
            Status::TimedOut => PublicStatus::TimedOut,
            Status::Finalized | Status::FinalizedDegraded => {
                PublicStatus::of_outcome(outcome.unwrap_or(Status::Succeeded))
            }
        }
    }

    /// The public status of an internal terminal status (`succeeded`, `failed`, `canceled`,
    /// `timed_out`; anything else reads as its nearest outcome, `succeeded`).
    pub fn of_outcome(s: Status) -> PublicStatus {
        match s {
            Status::Failed => PublicStatus::Failed,
            Status::Canceled => PublicStatus::Canceled,
            Status::TimedOut => PublicStatus::TimedOut,
            _ => PublicStatus::Succeeded,
        }
    }

    /// The internal statuses an execution in this public status may be in (the list filter).
    pub fn internal(self) -> &'static [Status] {
        match self {
            PublicStatus::Queued => &[Status::Queued],
            PublicStatus::Starting => &[Status::Submitting, Status::Submitted],
            PublicStatus::Processing => &[Status::Running],
            // An outcome: in its own status until finalized, then final with it as outcome.
            PublicStatus::Succeeded => &[Status::Succeeded],
            PublicStatus::Failed => &[Status::Failed],
            PublicStatus::Canceled => &[Status::Canceled],
            PublicStatus::TimedOut => &[Status::TimedOut],
        }
    }

    /// The internal terminal status this outcome is (None for work in progress).
    pub fn outcome(self) -> Option<Status> {
        match self {
            PublicStatus::Succeeded => Some(Status::Succeeded),
            PublicStatus::Failed => Some(Status::Failed),
            PublicStatus::Canceled => Some(Status::Canceled),
            PublicStatus::TimedOut => Some(Status::TimedOut),
            _ => None,
        }
    }

    /// What a list filter naming a former (internal) status should use instead.
    pub fn replacement_of(old: &str) -> Option<&'static str> {
        Some(match old {
            "submitting" | "submitted" => "status=starting",
            "running" => "status=processing",
            "finalized" => {
                "status=succeeded,failed,canceled,timed_out (a terminal status is its outcome) with delivery=delivered or delivery=none"
            }
            "finalized_degraded" => "delivery=degraded",
            _ => return None,
        })
    }
}

/// A final guard written before `hot.outcome` existed: the outcome from its error.
fn legacy_outcome(g: &Guard) -> Status {
    use executor_lifecycle::ErrorClass;
    match g.hot.error.as_ref().map(|f| f.class) {
        None => Status::Succeeded,
        Some(ErrorClass::Canceled) => Status::Canceled,
        Some(_) => Status::Failed,
    }
}

impl std::fmt::Display for PublicStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the delivery of a terminal execution's outcome stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Terminal, not finalized yet: cost, the outcome event and the webhook (if one was asked
    /// for) are on their way; a failed webhook is retried with backoff (`next_attempt_at`).
    Pending,
    /// Finalized: the webhook accepted the outcome.
    Delivered,
    /// Finalized without delivery: the webhook kept failing (`error`); the outcome stands
    /// and can be delivered again (`POST /v1/executions/{id}/redrive`).
    Degraded,
    /// Finalized; no webhook was asked for, so there was nothing to deliver.
    None,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Degraded,
        DeliveryState::None,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Degraded => "degraded",
            DeliveryState::None => "none",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The delivery state after a committed transition (None before the execution is
    /// terminal).
    pub fn after(record: &executor_lifecycle::TransitionRecord) -> Option<DeliveryState> {
        use executor_lifecycle::Event;
        if !record.to.is_terminal() {
            return None;
        }
        Some(match record.event {
            Event::DeliveryFailed => DeliveryState::Degraded,
            Event::Redelivered => DeliveryState::Delivered,
            Event::Delivered if record.detail["webhook_delivered"] == false => DeliveryState::None,
            Event::Delivered => DeliveryState::Delivered,
            _ => DeliveryState::Pending,
        })
    }

    /// The delivery state of a guard (None while the execution is not terminal).
    pub fn of(g: &Guard) -> Option<DeliveryState> {
        Some(match g.status() {
            s if !s.is_terminal() => return None,
            Status::FinalizedDegraded => DeliveryState::Degraded,
            // Finalize counts a delivery attempt only when there is a webhook to deliver to.
            Status::Finalized if g.hot.delivery_attempts == 0 => DeliveryState::None,
            Status::Finalized => DeliveryState::Delivered,
            _ => DeliveryState::Pending,
        })
    }
}

/// The outcome's delivery: the lifecycle's finalization (cost, downstream outcome event,
/// customer webhook), present once the execution is terminal.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// `pending`, `delivered`, `degraded` or `none`.
    pub state: DeliveryState,
    /// Webhook delivery attempts made (0 without a webhook).
    pub attempts: u32,
    /// When the delivery reached this state (the last attempt, or the finalization).
    pub updated_at: String,
    /// While pending after a failed attempt: when the next one is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// While pending after a failed attempt: why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When degraded: the delivery error (class `degraded_finalization`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
}

impl DeliveryView {
    /// The delivery of a guard (None while the execution is not terminal).
    pub fn of(g: &Guard) -> Option<DeliveryView> {
        let state = DeliveryState::of(g)?;
        let retry = g
            .hot
            .waiting
            .as_ref()
            .filter(|w| state == DeliveryState::Pending && w.reason == "delivery_retry");
        Some(DeliveryView {
            state,
            attempts: g.hot.delivery_attempts,
            updated_at: rfc3339(g.updated_at_ms),
            next_attempt_at: retry.map(|w| rfc3339(w.until_ms)),
            last_error: retry.and_then(|w| w.detail.clone()),
            error: match state {
                DeliveryState::Degraded => g.hot.delivery_error.as_ref().map(ErrorView::from),
                _ => None,
            },
        })
    }
}

/// An error as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorView {
    /// Error class.
    pub class: String,
    /// What the customer should read.
    pub message: String,
    /// Provider / system detail.
    pub detail: String,
    /// Provider's own code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
    /// Provider HTTP status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Failing input field (JSON pointer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Would a retry of the same request likely succeed?
    pub retryable: bool,
    /// customer, provider or platform.
    pub fault: String,
}

impl From<&Failure> for ErrorView {
    fn from(f: &Failure) -> Self {
        ErrorView {
            class: f.class.as_str().to_string(),
            message: f.class.customer_message().to_string(),
            detail: f.message.clone(),
            provider_code: f.provider_code.clone(),
            http_status: f.http_status,
            field: f.field.clone(),
            retryable: f.class.is_retryable(),
            fault: serde_json::to_value(f.class.fault())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        }
    }
}

/// Links to the operations on an execution.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExecutionUrls {
    /// `GET` this execution.
    #[serde(rename = "self")]
    pub self_: String,
    /// `POST` to cancel it.
    pub cancel: String,
    /// `GET` its timeline.
    pub events: String,
    /// `GET` the provider's raw final response (once terminal).
    pub raw: String,
}

/// An execution as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExecutionView {
    /// Id.
    pub id: String,
    /// Always `execution`.
    #[schema(value_type = String, example = "execution")]
    pub object: &'static str,
    /// Model.
    pub model: String,
    /// Provider.
    pub provider: String,
    /// Shape: `immediate`, `polling` or `callback`.
    pub shape: String,
    /// `queued`, `starting`, `processing`, or the outcome: `succeeded`, `failed`, `canceled`,
    /// `timed_out`. Once it is an outcome it never changes again.
    pub status: PublicStatus,
    /// The outcome, once terminal: the same as `status` then (kept for clients that read it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<PublicStatus>,
    /// The outcome's delivery (finalization: cost, outcome event, webhook), once terminal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryView>,
    /// True once the provider work is over.
    pub terminal: bool,
    /// Committed version.
    pub version: u64,
    /// Acceptance time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Terminal time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Normalized outputs (absent in list items: read the execution for them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<Output>>,
    /// Usage figures the cost was computed from.
    #[serde(skip_serializing_if = "Value::is_null")]
    #[schema(required = false)]
    pub usage: Value,
    /// The error, if failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
    /// Outcome delivery error, if degraded (the same as `delivery.error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_error: Option<ErrorView>,
    /// Cost, once finalized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// The provider's job id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_job_id: Option<String>,
    /// The provider's own status string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    /// Progress 0..1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// What it waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Wait>,
    /// Submit attempts.
    pub attempts: u32,
    /// Cancel requested.
    pub cancel_requested: bool,
    /// Ids of the provider callbacks received (verified and stored), in arrival order; which
    /// step consumed each is in the timeline (`callbacks_consumed`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub callbacks_received: Vec<String>,
    /// Callbacks the webhook route refused (the first 10): when and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub callbacks_rejected: Vec<RejectedCallbackView>,
    /// Related URLs.
    pub urls: ExecutionUrls,
    /// The execution this one reruns (`POST /v1/executions/{id}/rerun`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    /// The executions that rerun this one, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reruns: Vec<String>,
    /// The batch this execution is an item of (`POST /v1/batches`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Its index in that batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_index: Option<u32>,
    /// Its fallback chain, when the create named one: every attempt, the current last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainView>,
}

/// A fallback chain and its attempts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChainView {
    /// The steps' models in order: the one asked for, then the fallbacks, a model repeated
    /// once per retry (`retries`).
    pub models: Vec<String>,
    /// True once an attempt failed and the next model took over.
    pub fallback_used: bool,
    /// The first attempt's error, when it fell back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_error: Option<ErrorView>,
    /// Every attempt, oldest first; the last is the current one (the outcome's).
    pub attempts: Vec<AttemptView>,
}

/// One attempt of a chain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// The chain step (0: the model asked for).
    pub step: u32,
    /// Its model.
    pub model: String,
    /// Its provider.
    pub provider: String,
    /// The provider's job id, if one was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_job_id: Option<String>,
    /// Its status: `failed` for the attempts that fell back, the execution's for the current.
    pub status: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
    /// When it started.
    pub started_at: String,
    /// When it ended (the current one: once terminal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Its cost (billed: the current one's, once finalized).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
}

impl ChainView {
    fn of(g: &Guard) -> Option<ChainView> {
        if g.hot.chain.is_empty() {
            return None;
        }
        let mut models = vec![g.requested_model().to_string()];
        models.extend(g.hot.chain.iter().cloned());
        let mut attempts: Vec<AttemptView> = g
            .hot
            .attempts
            .iter()
            .map(|a| AttemptView {
                step: a.step,
                model: a.model.clone(),
                provider: a.provider.clone(),
                provider_job_id: a.job_id.clone(),
                status: a.status.as_str().to_string(),
                error: a.error.as_ref().map(ErrorView::from),
                started_at: rfc3339(a.started_at_ms),
                ended_at: Some(rfc3339(a.ended_at_ms)),
                cost: a.cost.clone(),
            })
            .collect();
        attempts.push(AttemptView {
            step: g.hot.step,
            model: g.model.clone(),
            provider: g.provider.clone(),
            provider_job_id: g.hot.job_id.clone(),
            status: PublicStatus::of(g).as_str().to_string(),
            error: g.hot.error.as_ref().map(ErrorView::from),
            started_at: rfc3339(
                g.hot
                    .attempts
                    .last()
                    .map_or(g.created_at_ms, |a| a.ended_at_ms),
            ),
            ended_at: g.hot.terminal_at_ms.map(rfc3339),
            cost: g.hot.cost.clone(),
        });
        Some(ChainView {
            models,
            fallback_used: g.hot.step > 0,
            primary_error: g
                .hot
                .attempts
                .first()
                .and_then(|a| a.error.as_ref())
                .map(ErrorView::from),
            attempts,
        })
    }
}

/// A refused callback.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RejectedCallbackView {
    /// RFC 3339 time it arrived.
    pub at: String,
    /// Why it was refused (error class and message).
    pub reason: String,
}

impl ExecutionView {
    /// Builds the view from a guard and its result blob.
    pub fn new(g: &Guard, result: Option<&ResultRecord>) -> ExecutionView {
        let provider_result = result.and_then(|r| r.result.as_ref());
        ExecutionView {
            id: g.id.clone(),
            object: "execution",
            model: g.requested_model().to_string(),
            provider: g.provider.clone(),
            shape: g.shape.as_str().to_string(),
            status: PublicStatus::of(g),
            outcome: Some(PublicStatus::of(g)).filter(|s| s.is_terminal()),
            delivery: DeliveryView::of(g),
            terminal: g.status().is_terminal(),
            version: g.version(),
            created_at: rfc3339(g.created_at_ms),
            updated_at: rfc3339(g.updated_at_ms),
            completed_at: g.hot.terminal_at_ms.map(rfc3339),
            outputs: Some(
                provider_result
                    .map(|r| r.outputs.clone())
                    .unwrap_or_default(),
            ),
            usage: provider_result
                .map(|r| r.usage.clone())
                .unwrap_or(Value::Null),
            error: g.hot.error.as_ref().map(ErrorView::from),
            delivery_error: g.hot.delivery_error.as_ref().map(ErrorView::from),
            cost: g.hot.cost.clone(),
            provider_job_id: g.hot.job_id.clone(),
            provider_status: g.hot.provider_status.clone(),
            progress: g.hot.progress,
            waiting: g.hot.waiting.clone(),
            attempts: g.hot.attempt,
            cancel_requested: g.cancel_requested,
            callbacks_received: g.callbacks_received.clone(),
            callbacks_rejected: g
                .callbacks_rejected
                .iter()
                .map(|r| RejectedCallbackView {
                    at: rfc3339(r.at_ms),
                    reason: r.reason.clone(),
                })
                .collect(),
            urls: ExecutionUrls {
                self_: format!("/v1/executions/{}", g.id),
                cancel: format!("/v1/executions/{}/cancel", g.id),
                events: format!("/v1/executions/{}/events", g.id),
                raw: format!("/v1/executions/{}/raw", g.id),
            },
            rerun_of: g.rerun_of.clone(),
            reruns: g.reruns.clone(),
            batch_id: g.batch.as_ref().map(|b| b.id.clone()),
            batch_index: g.batch.as_ref().map(|b| b.index),
            chain: ChainView::of(g),
        }
    }

    /// The view of a list item: the guard alone, no outputs or usage (no blob read).
    pub fn summary(g: &Guard) -> ExecutionView {
        let mut v = ExecutionView::new(g, None);
        v.outputs = None;
        v
    }
}

/// The provider's raw final response of an execution, as the adapter received it (large
/// inline media replaced by a marker: the outputs carry it).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RawResponse {
    /// `raw_response`.
    pub object: &'static str,
    /// The execution.
    pub execution_id: String,
    /// Its outcome.
    pub status: PublicStatus,
    /// The raw response (JSON; null when the provider sent none, e.g. refused at submit).
    #[schema(value_type = Object)]
    pub raw: Value,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use executor_lifecycle::{Event, ExecutionRequest, Shape};

    fn queued() -> Guard {
        let req = ExecutionRequest {
            retries: None,
            fallbacks: Default::default(),
            id: "ex_test".into(),
            tenant: "acme".into(),
            model: "runway/gen4-turbo".into(),
            input: serde_json::json!({"promptText": "waves"}),
            webhook_url: None,
            idempotency_key: None,
            created_at_ms: 1_000,
            max_duration_ms: 60_000,
        };
        Guard::accepted(&req, "runway", Shape::Polling)
    }

    fn after(g: &Guard, events: &[Event]) -> Guard {
        let mut g = g.clone();
        for (i, e) in events.iter().enumerate() {
            g = g.advance(*e, 2_000 + i as i64).unwrap();
        }
        g
    }

    #[test]
    fn work_in_progress_reads_queued_starting_processing() {
        let q = queued();
        assert_eq!(PublicStatus::of(&q), PublicStatus::Queued);
        assert_eq!(DeliveryView::of(&q).map(|d| d.state), None);
        let submitting = after(&q, &[Event::SubmitStarted]);
        assert_eq!(PublicStatus::of(&submitting), PublicStatus::Starting);
        let submitted = after(&submitting, &[Event::JobCreated]);
        assert_eq!(PublicStatus::of(&submitted), PublicStatus::Starting);
        let running = after(&submitted, &[Event::Started]);
        assert_eq!(PublicStatus::of(&running), PublicStatus::Processing);
        // A refused submit steps back to queued: non-terminal statuses may.
        let retry = after(&submitting, &[Event::SubmitRetry]);
        assert_eq!(PublicStatus::of(&retry), PublicStatus::Queued);
    }

    #[test]
    fn an_outcome_stays_the_status_through_every_finalization() {
        let running = after(
            &queued(),
            &[Event::SubmitStarted, Event::JobCreated, Event::Started],
        );
        for (event, public) in [
            (Event::JobSucceeded, PublicStatus::Succeeded),
            (Event::JobFailed, PublicStatus::Failed),
            (Event::Canceled, PublicStatus::Canceled),
            (Event::DeadlineExceeded, PublicStatus::TimedOut),
        ] {
            let terminal = after(&running, &[event]);
            assert_eq!(PublicStatus::of(&terminal), public);
            assert_eq!(DeliveryState::of(&terminal), Some(DeliveryState::Pending));
            let mut retrying = after(&terminal, &[Event::DeliveryRetry]);
            retrying.hot.delivery_attempts = 1;
            assert_eq!(PublicStatus::of(&retrying), public);
            assert_eq!(DeliveryState::of(&retrying), Some(DeliveryState::Pending));
            // Without a webhook, finalize makes no attempt: nothing to deliver.
            let none = after(&terminal, &[Event::Delivered]);
            assert_eq!(PublicStatus::of(&none), public);
            assert_eq!(DeliveryState::of(&none), Some(DeliveryState::None));
            let mut delivered = after(&retrying, &[Event::Delivered]);
            delivered.hot.delivery_attempts = 2;
            assert_eq!(PublicStatus::of(&delivered), public);
            assert_eq!(
                DeliveryState::of(&delivered),
                Some(DeliveryState::Delivered)
            );
            let degraded = after(&retrying, &[Event::DeliveryFailed]);
            assert_eq!(PublicStatus::of(&degraded), public);
            assert_eq!(DeliveryState::of(&degraded), Some(DeliveryState::Degraded));
            let redriven = after(&degraded, &[Event::Redelivered]);
            assert_eq!(PublicStatus::of(&redriven), public);
            assert_eq!(DeliveryState::of(&redriven), Some(DeliveryState::Delivered));
            // The list filter finds it in each of those internal statuses.
            for g in [&terminal, &none, &delivered, &degraded, &redriven] {
                let internal = public.internal();
                let found = internal.contains(&g.status())
                    || (g.status().is_final() && g.hot.outcome == public.outcome());
                assert!(found, "{public} filter misses {:?}", g.status());
            }
        }
    }

    #[test]
    fn every_internal_status_has_a_public_one_and_old_names_a_replacement() {
        for s in Status::ALL {
            let p = PublicStatus::of_internal(s, Some(Status::Failed));
            assert_eq!(p.is_terminal(), s.is_terminal(), "{s}");
            if PublicStatus::parse(s.as_str()).is_none() {
                assert!(PublicStatus::replacement_of(s.as_str()).is_some(), "{s}");
            }
        }
    }
}
