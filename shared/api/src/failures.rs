//! `GET /v1/failures`: the caller's failed and degraded executions grouped into piles (error
//! class, provider, model, normalized provider message), most frequent first, with counts,
//! first/last seen and an example execution per pile; and beside them the executions the
//! reconciler parked (it could not re-drive them 5 times in a row), grouped by provider,
//! model, status and normalized reason. Read from the index, never from blobs.

use crate::ApiState;
use crate::auth::authorize;
use crate::problem::Problem;
use crate::view::rfc3339;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use executor_lifecycle::ErrorClass;
use executor_lifecycle::ListQuery;
use executor_lifecycle::piles::{ParkedPile, Pile, group, group_parked};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Executions read at most per request; beyond, `truncated` is true.
pub const MAX_SCANNED: usize = 20_000;
const PAGE: usize = 500;

/// A pile as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PileView {
    /// The pile's stable id (`executor failures rerun PILE`; `GET /v1/failures/{pile_id}`).
    pub id: String,
    /// The error class.
    pub error_class: ErrorClass,
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The failure message with numbers, ids and URLs blanked.
    pub message: String,
    /// Executions in the pile.
    pub count: u64,
    /// When the earliest failed (RFC 3339).
    pub first_seen: String,
    /// When the latest failed (RFC 3339).
    pub last_seen: String,
    /// The latest execution of the pile (`executor explain` it).
    pub example_execution_id: String,
}

impl From<Pile> for PileView {
    fn from(p: Pile) -> Self {
        PileView {
            id: p.id,
            error_class: p.error_class,
            provider: p.provider,
            model: p.model,
            message: p.message,
            count: p.count,
            first_seen: rfc3339(p.first_seen_ms),
            last_seen: rfc3339(p.last_seen_ms),
            example_execution_id: p.example_execution_id,
        }
    }
}

/// A pile of executions the reconciler parked, as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ParkedPileView {
    /// The pile's stable id (`GET /v1/failures/{pile_id}`).
    pub id: String,
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The status they are stuck in (a final status: its outbox is not applied yet).
    pub status: executor_lifecycle::Status,
    /// Why the reconciler could not re-drive them, with numbers, ids and URLs blanked.
    pub reason: String,
    /// Executions in the pile.
    pub count: u64,
    /// The most failed reconcile tries in a row of one of them.
    pub failures: u32,
    /// The earliest first failure (RFC 3339).
    pub first_failure: String,
    /// The latest failure (RFC 3339).
    pub last_failure: String,
    /// The execution that failed last (`executor explain` it).
    pub example_execution_id: String,
}

impl From<ParkedPile> for ParkedPileView {
    fn from(p: ParkedPile) -> Self {
        ParkedPileView {
            id: p.id,
            provider: p.provider,
            model: p.model,
            status: p.status,
            reason: p.reason,
            count: p.count,
            failures: p.failures,
            first_failure: rfc3339(p.first_failure_ms),
            last_failure: rfc3339(p.last_failure_ms),
            example_execution_id: p.example_execution_id,
        }
    }
}

/// The piles.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FailurePiles {
    /// Always `list`.
    #[schema(value_type = String, example = "list")]
    pub object: &'static str,
    /// Executions created at or after this time were considered (RFC 3339).
    pub since: String,
    /// Failed or degraded executions read.
    pub failed: u64,
    /// True when more than the scan limit failed in the window (the piles count the newest).
    pub truncated: bool,
    /// The piles, most frequent first.
    pub data: Vec<PileView>,
    /// Executions in the window the reconciler parked: it failed to re-drive them 5 times in
    /// a row (an outbox it cannot apply, a message it cannot send). Still retried with
    /// backoff; they leave the piles once re-driven.
    pub parked: u64,
    /// The parked executions in piles, most frequent first.
    pub parked_piles: Vec<ParkedPileView>,
}

struct Params {
    since: Duration,
    model: Option<String>,
    provider: Option<String>,
}

fn parse(raw: Option<&str>) -> Result<Params, Problem> {
    let mut p = Params {
        since: Duration::from_secs(24 * 3600),
        model: None,
        provider: None,
    };
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "since" => {
                p.since = humantime::parse_duration(&value)
                    .ok()
                    .filter(|d| *d <= Duration::from_secs(90 * 24 * 3600) && !d.is_zero())
                    .ok_or_else(|| {
                        Problem::bad_query(
                            "since",
                            "since must be a duration such as 90m, 24h or 7d, at most 90d",
                        )
                    })?;
            }
            "model" if !value.is_empty() => p.model = Some(value.into_owned()),
            "provider" if !value.is_empty() => p.provider = Some(value.into_owned()),
            other => {
                return Err(Problem::bad_query(
                    other,
                    format!(
                        "unknown or empty query parameter '{other}'; known: since, model, provider"
                    ),
                ));
            }
        }
    }
    Ok(p)
}

/// Failed and degraded executions grouped into piles.
///
/// Groups the caller's executions created in the window (`since`, default 24h) that failed,
/// timed out or whose outcome delivery failed, by error class, provider, model and normalized
/// message; and, in `parked_piles`, the executions of the window the reconciler parked.
#[utoipa::path(
    get,
    path = "/v1/failures",
    tag = "executions",
    operation_id = "failure_piles",
    params(
        ("since" = Option<String>, Query, description = "Window: a duration such as 90m, 24h, 7d (default 24h, at most 90d)", example = "24h"),
        ("model" = Option<String>, Query, description = "Only this model"),
        ("provider" = Option<String>, Query, description = "Only this provider"),
    ),
    responses(
        (status = 200, description = "The piles, most frequent first", body = FailurePiles),
        (status = 400, description = "A bad query parameter (named in `field`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn piles(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<FailurePiles>, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let p = parse(raw.as_deref())?;
    let (since_ms, failed, parked, truncated) = piles_of(&state, &tenant, p).await?;
    Ok(Json(FailurePiles {
        object: "list",
        since: rfc3339(since_ms),
        failed: failed.iter().map(|p| p.count).sum(),
        truncated,
        data: failed.into_iter().map(PileView::from).collect(),
        parked: parked.iter().map(|p| p.count).sum(),
        parked_piles: parked.into_iter().map(ParkedPileView::from).collect(),
    }))
}

/// The piles of a window: (since, failure piles, parked piles, truncated).
async fn piles_of(
    state: &ApiState,
    tenant: &str,
    p: Params,
) -> Result<(i64, Vec<Pile>, Vec<ParkedPile>, bool), Problem> {
    let now = state.engine.ports().clock.now_ms();
    let since_ms = now - i64::try_from(p.since.as_millis()).unwrap_or(i64::MAX / 2);
    let query = ListQuery {
        model: p.model,
        provider: p.provider,
        created_after_ms: Some(since_ms),
        with_error: true,
        limit: PAGE,
        ..Default::default()
    };
    let (guards, truncated) = scan(state, tenant, query.clone()).await?;
    let parked_query = ListQuery {
        with_error: false,
        parked: true,
        ..query
    };
    let (parked, parked_truncated) = scan(state, tenant, parked_query).await?;
    Ok((
        since_ms,
        group(&guards),
        group_parked(&parked),
        truncated || parked_truncated,
    ))
}

/// One pile and every execution in it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PileMembers {
    /// Always `pile`.
    #[schema(value_type = String, example = "pile")]
    pub object: &'static str,
    /// The pile's id.
    pub id: String,
    /// `failed` (a pile of `data`) or `parked` (a pile of `parked_piles`).
    #[schema(example = "failed")]
    pub kind: String,
    /// Executions created at or after this time were considered (RFC 3339).
    pub since: String,
    /// True when the window held more executions than are read (the pile has the newest).
    pub truncated: bool,
    /// The failure pile, when `kind` is `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pile: Option<PileView>,
    /// The parked pile, when `kind` is `parked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked_pile: Option<ParkedPileView>,
    /// Every execution of the pile, newest first (what `executor failures rerun` reruns).
    pub execution_ids: Vec<String>,
}

/// One pile of `GET /v1/failures` (by its `id`, in the same window) with every execution in
/// it: what `executor failures rerun PILE` reruns.
#[utoipa::path(
    get,
    path = "/v1/failures/{pile_id}",
    tag = "executions",
    operation_id = "failure_pile",
    params(
        ("pile_id" = String, Path, description = "A pile's `id` from `GET /v1/failures`"),
        ("since" = Option<String>, Query, description = "Window: a duration such as 90m, 24h, 7d (default 24h, at most 90d)", example = "24h"),
        ("model" = Option<String>, Query, description = "Only this model"),
        ("provider" = Option<String>, Query, description = "Only this provider"),
    ),
    responses(
        (status = 200, description = "The pile and its executions", body = PileMembers),
        (status = 400, description = "A bad query parameter (named in `field`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No pile with this id in the window", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn pile(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(pile_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<PileMembers>, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let p = parse(raw.as_deref())?;
    let (since_ms, failed, parked, truncated) = piles_of(&state, &tenant, p).await?;
    let since = rfc3339(since_ms);
    if let Some(found) = failed.into_iter().find(|p| p.id == pile_id) {
        return Ok(Json(PileMembers {
            object: "pile",
            id: pile_id,
            kind: "failed".into(),
            since,
            truncated,
            execution_ids: found.execution_ids.clone(),
            pile: Some(found.into()),
            parked_pile: None,
        }));
    }
    if let Some(found) = parked.into_iter().find(|p| p.id == pile_id) {
        return Ok(Json(PileMembers {
            object: "pile",
            id: pile_id,
            kind: "parked".into(),
            since,
            truncated,
            execution_ids: found.execution_ids.clone(),
            pile: None,
            parked_pile: Some(found.into()),
        }));
    }
    Err(Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no pile {pile_id} among the failures of the window"),
    ))
}

/// Every execution matching `query`, newest first, at most [`MAX_SCANNED`]; true when more
/// matched.
pub(crate) async fn scan(
    state: &ApiState,
    tenant: &str,
    mut query: ListQuery,
) -> Result<(Vec<executor_lifecycle::Guard>, bool), Problem> {
    let mut guards = Vec::new();
    loop {
        let page = state.engine.list(tenant, &query).await?;
        let full = page.len() == PAGE;
        if let Some(last) = page.last() {
            query.before = Some((last.created_at_ms, last.id.clone()));
        }
        guards.extend(page);
        if guards.len() >= MAX_SCANNED {
            return Ok((guards, full));
        }
        if !full {
            return Ok((guards, false));
        }
    }
}
