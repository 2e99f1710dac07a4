//! `GET /v1/executions`: a tenant's executions, newest first, with an opaque cursor and
//! filters, served from the index (SQLite embedded; the DynamoDB tenant GSI in AWS, no scans).
//!
//! The cursor is the (created_at, id) position of the last item of the page, base64url
//! encoded: a page starts strictly after it, so executions inserted while a client pages
//! (always newer than the first page's head) never shift later pages: no duplicates, no gaps.

use crate::ApiState;
use crate::auth::authorize;
use crate::problem::Problem;
use crate::view::{DeliveryState, ExecutionView, PublicStatus};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use executor_lifecycle::{ErrorClass, ListQuery, Status};
use serde::Serialize;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest page size.
pub const MAX_LIMIT: usize = 100;

/// A page of executions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExecutionList {
    /// Always `list`.
    #[schema(value_type = String, example = "list")]
    pub object: &'static str,
    /// The executions, newest first (without outputs: read an execution for them).
    pub data: Vec<ExecutionView>,
    /// Whether more executions match after this page.
    pub has_more: bool,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The parsed query string.
#[derive(Debug, Default)]
pub struct Params {
    /// Page size.
    pub limit: usize,
    /// The filters and cursor position.
    pub query: ListQuery,
    /// The public statuses asked for (`status=`), in the order given.
    pub statuses: Vec<PublicStatus>,
    /// The delivery state asked for (`delivery=`).
    pub delivery: Option<DeliveryState>,
    /// The filters exclude every execution (e.g. `status=queued&delivery=delivered`).
    pub matches_nothing: bool,
    /// Only the items of this batch.
    pub batch_id: Option<String>,
}

/// Encodes a cursor position.
pub fn encode_cursor(created_at_ms: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at_ms}:{id}"))
}

/// Decodes a cursor position.
pub fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let raw = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (ms, id) = text.split_once(':')?;
    let ms: i64 = ms.parse().ok()?;
    if id.is_empty() || ms < 0 {
        return None;
    }
    Some((ms, id.to_string()))
}

fn rfc3339_ms(name: &str, value: &str) -> Result<i64, Problem> {
    let bad = || {
        Problem::bad_query(
            name,
            format!(
                "{name} must be an RFC 3339 time such as 2026-11-26T10:00:00Z or 2026-11-26T11:00:00+01:00, not '{value}'"
            ),
        )
    };
    // humantime reads UTC (`Z`) only: a numeric offset is read here and applied after.
    let split = value
        .len()
        .checked_sub(6)
        .filter(|&i| value.is_char_boundary(i))
        .map(|i| value.split_at(i));
    let (utc, offset_ms) = match split {
        Some((time, off))
            // A `+` sent unencoded in a query string arrives as a space.
            if off.is_ascii() && off.starts_with(['+', '-', ' ']) && off.as_bytes()[3] == b':' =>
        {
            let h: i64 = off[1..3].parse().map_err(|_| bad())?;
            let m: i64 = off[4..6].parse().map_err(|_| bad())?;
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let sign = if off.starts_with('-') { -1 } else { 1 };
            (format!("{time}Z"), sign * (h * 60 + m) * 60_000)
        }
        _ => (value.to_string(), 0),
    };
    let t = humantime::parse_rfc3339_weak(&utc).map_err(|_| bad())?;
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Problem::bad_query(name, format!("{name} is before 1970")))?
        .as_millis();
    let ms = i64::try_from(ms)
        .map_err(|_| Problem::bad_query(name, format!("{name} is too far ahead")))?;
    Ok(ms - offset_ms)
}

/// Parses `limit`, `cursor`, `status`, `delivery`, `model`, `provider`, `error_class`,
/// `batch_id`, `created_after`,
/// `created_before`; anything else, a repeated parameter or a bad value is a 400 naming it.
pub fn parse(raw: Option<&str>) -> Result<Params, Problem> {
    let mut p = Params {
        limit: DEFAULT_LIMIT,
        ..Params::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let (name, value) = (name.into_owned(), value.into_owned());
        if seen.contains(&name) {
            return Err(Problem::bad_query(
                &name,
                format!("{name} is given more than once; statuses are a comma-separated list"),
            ));
        }
        seen.push(name.clone());
        match name.as_str() {
            "limit" => {
                p.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        Problem::bad_query(
                            "limit",
                            format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                        )
                    })?;
            }
            "cursor" => {
                p.query.before = Some(decode_cursor(&value).ok_or_else(|| {
                    Problem::bad_query("cursor", "cursor is not one this API returned")
                })?);
            }
            "status" => {
                for s in value.split(',').map(str::trim) {
                    let status = PublicStatus::parse(s).ok_or_else(|| {
                        let all: Vec<&str> = PublicStatus::ALL.iter().map(|s| s.as_str()).collect();
                        let hint = PublicStatus::replacement_of(s)
                            .map(|r| format!("'{s}' is no longer a status: use {r}"))
                            .unwrap_or_else(|| format!("unknown status '{s}'"));
                        Problem::bad_query("status", format!("{hint}; one of {}", all.join(", ")))
                    })?;
                    if !p.statuses.contains(&status) {
                        p.statuses.push(status);
                    }
                }
            }
            "delivery" => {
                p.delivery = Some(DeliveryState::parse(&value).ok_or_else(|| {
                    let all: Vec<&str> = DeliveryState::ALL.iter().map(|s| s.as_str()).collect();
                    Problem::bad_query(
                        "delivery",
                        format!(
                            "unknown delivery state '{value}'; one of {}",
                            all.join(", ")
                        ),
                    )
                })?);
            }
            "model" => p.query.model = Some(non_empty("model", value)?),
            "provider" => p.query.provider = Some(non_empty("provider", value)?),
            "error_class" => {
                p.query.error_class = Some(ErrorClass::parse(&value).ok_or_else(|| {
                    let all: Vec<&str> = ErrorClass::ALL.iter().map(|c| c.as_str()).collect();
                    Problem::bad_query(
                        "error_class",
                        format!("unknown error class '{value}'; one of {}", all.join(", ")),
                    )
                })?);
            }
            "batch_id" => p.batch_id = Some(non_empty("batch_id", value)?),
            "created_after" => p.query.created_after_ms = Some(rfc3339_ms(&name, &value)?),
            "created_before" => p.query.created_before_ms = Some(rfc3339_ms(&name, &value)?),
            other => {
                return Err(Problem::bad_query(
                    other,
                    format!(
                        "unknown query parameter '{other}'; known: limit, cursor, status, delivery, model, provider, error_class, batch_id, created_after, created_before"
                    ),
                ));
            }
        }
    }
    p.internal_filters();
    Ok(p)
}

impl Params {
    /// The public `status` and `delivery` filters as the index's internal statuses, outcomes
    /// and delivery attempts (the mapping of [`PublicStatus`] and [`DeliveryState`]).
    fn internal_filters(&mut self) {
        let mut statuses: Vec<Status> = Vec::new();
        let mut outcomes: Vec<Status> = Vec::new();
        for p in &self.statuses {
            statuses.extend(p.internal());
            if let Some(o) = p.outcome() {
                // An outcome: in its own status until finalized, then final with it.
                statuses.extend([Status::Finalized, Status::FinalizedDegraded]);
                outcomes.push(o);
            }
        }
        if let Some(d) = self.delivery {
            let (of_delivery, attempted): (&[Status], Option<bool>) = match d {
                DeliveryState::Pending => (
                    &[
                        Status::Succeeded,
                        Status::Failed,
                        Status::Canceled,
                        Status::TimedOut,
                    ],
                    None,
                ),
                DeliveryState::Delivered => (&[Status::Finalized], Some(true)),
                DeliveryState::None => (&[Status::Finalized], Some(false)),
                DeliveryState::Degraded => (&[Status::FinalizedDegraded], None),
            };
            statuses = if self.statuses.is_empty() {
                of_delivery.to_vec()
            } else {
                statuses.retain(|s| of_delivery.contains(s));
                statuses
            };
            self.matches_nothing = statuses.is_empty();
            self.query.delivery_attempted = attempted;
        }
        statuses.sort();
        statuses.dedup();
        self.query.statuses = statuses;
        self.query.outcomes = outcomes;
    }
}

fn non_empty(name: &str, value: String) -> Result<String, Problem> {
    if value.is_empty() {
        Err(Problem::bad_query(name, format!("{name} is empty")))
    } else {
        Ok(value)
    }
}

/// Lists the caller's executions, newest first.
///
/// Filters combine with AND; `status` takes a comma-separated list of public statuses
/// (`queued`, `starting`, `processing`, `succeeded`, `failed`, `canceled`, `timed_out`) and
/// `delivery` one delivery state. Pass `next_cursor` back as `cursor` for the next page;
/// executions created meanwhile never shift later pages.
#[utoipa::path(
    get,
    path = "/v1/executions",
    tag = "executions",
    operation_id = "list_executions",
    params(
        ("limit" = Option<u32>, Query, description = "Page size", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("status" = Option<String>, Query, description = "Comma-separated public statuses: queued, starting, processing, succeeded, failed, canceled, timed_out", example = "failed,timed_out"),
        ("delivery" = Option<DeliveryState>, Query, description = "Only terminal executions whose outcome delivery is in this state"),
        ("model" = Option<String>, Query, description = "Only this model", example = "openai/gpt-image-1"),
        ("provider" = Option<String>, Query, description = "Only this provider", example = "openai"),
        ("error_class" = Option<ErrorClass>, Query, description = "Only executions failed with this error class"),
        ("batch_id" = Option<String>, Query, description = "Only the items of this batch (`POST /v1/batches`)", example = "bat_01jd0000000000000000000000"),
        ("created_after" = Option<String>, Query, format = DateTime, description = "Created at or after (RFC 3339)"),
        ("created_before" = Option<String>, Query, format = DateTime, description = "Created strictly before (RFC 3339)"),
    ),
    responses(
        (status = 200, description = "A page, newest first", body = ExecutionList),
        (status = 400, description = "A bad query parameter (named in `field` as /query/NAME)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<ExecutionList>, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let mut params = parse(raw.as_deref())?;
    if params.matches_nothing {
        return Ok(Json(ExecutionList {
            object: "list",
            data: Vec::new(),
            has_more: false,
            next_cursor: None,
        }));
    }
    // One more than the page tells whether there is a next page.
    params.query.limit = params.limit + 1;
    let mut guards = match &params.batch_id {
        // A batch's items (at most 100) are found through the batch, on every backend, and
        // filtered here; an unknown batch (or another tenant's) lists nothing.
        Some(batch_id) => match state.engine.batch(&tenant, batch_id).await {
            Ok(batch) => {
                let mut items: Vec<_> = batch
                    .executions
                    .into_iter()
                    .flatten()
                    .filter(|g| params.query.matches(g))
                    .collect();
                items.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
                items.truncate(params.query.limit);
                items
            }
            Err(executor_lifecycle::EngineError::NotFound) => Vec::new(),
            Err(e) => return Err(e.into()),
        },
        None => state.engine.list(&tenant, &params.query).await?,
    };
    let has_more = guards.len() > params.limit;
    guards.truncate(params.limit);
    let next_cursor = if has_more {
        guards.last().map(|g| encode_cursor(g.created_at_ms, &g.id))
    } else {
        None
    };
    Ok(Json(ExecutionList {
        object: "list",
        data: guards.iter().map(ExecutionView::summary).collect(),
        has_more,
        next_cursor,
    }))
}

/// Fuzz entry point: a list query string as the API parses it; must return, never panic.
#[doc(hidden)]
pub fn fuzz_query(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse(Some(s));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = encode_cursor(1_764_000_000_123, "exe_01ABC");
        assert_eq!(
            decode_cursor(&c),
            Some((1_764_000_000_123, "exe_01ABC".to_string()))
        );
        assert_eq!(decode_cursor("not base64!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("12")), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("x:exe_1")), None);
    }

    #[test]
    fn parses_every_filter() {
        let p = parse(Some(
            "limit=5&status=failed,timed_out&model=a%2Fb&provider=fal&error_class=rate_limited&created_after=2026-11-26T10:00:00Z&created_before=2026-11-26T11:00:00.5Z",
        ))
        .map_err(|p| p.detail)
        .unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(p.limit, 5);
        assert_eq!(
            p.statuses,
            vec![PublicStatus::Failed, PublicStatus::TimedOut]
        );
        assert_eq!(
            p.query.statuses,
            vec![
                Status::Failed,
                Status::TimedOut,
                Status::Finalized,
                Status::FinalizedDegraded
            ]
        );
        assert_eq!(p.query.outcomes, vec![Status::Failed, Status::TimedOut]);
        assert_eq!(p.query.model.as_deref(), Some("a/b"));
        assert_eq!(p.query.provider.as_deref(), Some("fal"));
        assert_eq!(p.query.error_class, Some(ErrorClass::RateLimited));
        assert_eq!(p.query.created_after_ms, Some(1_795_687_200_000));
        assert_eq!(p.query.created_before_ms, Some(1_795_690_800_500));
        // A numeric offset is the same instant as its UTC spelling.
        let q = parse(Some(
            "created_after=2026-11-26T11:00:00%2B01:00&created_before=2026-11-26T05:00:00-05:00",
        ))
        .map_err(|p| p.detail)
        .unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(q.query.created_after_ms, Some(1_795_687_200_000));
        assert_eq!(q.query.created_before_ms, Some(1_795_687_200_000));
    }

    #[test]
    fn public_statuses_map_to_internal_filters() {
        let q = |s: &str| parse(Some(s)).map_err(|p| p.detail).unwrap();
        let p = q("status=starting,processing");
        assert_eq!(
            p.query.statuses,
            vec![Status::Submitting, Status::Submitted, Status::Running]
        );
        assert!(p.query.outcomes.is_empty());
        let p = q("status=queued,succeeded");
        assert_eq!(
            p.query.statuses,
            vec![
                Status::Queued,
                Status::Succeeded,
                Status::Finalized,
                Status::FinalizedDegraded
            ]
        );
        assert_eq!(p.query.outcomes, vec![Status::Succeeded]);
        let p = q("delivery=degraded");
        assert_eq!(p.query.statuses, vec![Status::FinalizedDegraded]);
        let p = q("status=failed&delivery=none");
        assert_eq!(p.query.statuses, vec![Status::Finalized]);
        assert_eq!(p.query.outcomes, vec![Status::Failed]);
        assert_eq!(p.query.delivery_attempted, Some(false));
        let p = q("status=succeeded&delivery=pending");
        assert_eq!(p.query.statuses, vec![Status::Succeeded]);
        assert!(!p.matches_nothing);
        assert!(q("status=queued&delivery=delivered").matches_nothing);
        // An old name says what to use instead.
        let e = parse(Some("status=finalized_degraded")).unwrap_err();
        assert!(e.detail.contains("delivery=degraded"), "{}", e.detail);
    }

    #[test]
    fn bad_parameters_name_themselves() {
        for (q, field) in [
            ("limit=0", "/query/limit"),
            ("limit=101", "/query/limit"),
            ("limit=abc", "/query/limit"),
            ("status=processing,bogus", "/query/status"),
            ("status=finalized", "/query/status"),
            ("status=running", "/query/status"),
            ("delivery=finalized", "/query/delivery"),
            ("delivery=pending,none", "/query/delivery"),
            ("error_class=nope", "/query/error_class"),
            ("created_after=yesterday", "/query/created_after"),
            (
                "created_after=2026-11-26T10:00:00+25:00",
                "/query/created_after",
            ),
            ("cursor=%%%", "/query/cursor"),
            ("model=", "/query/model"),
            ("sort=asc", "/query/sort"),
            ("limit=1&limit=2", "/query/limit"),
        ] {
            match parse(Some(q)) {
                Ok(_) => panic!("{q} accepted"),
                Err(p) => {
                    assert_eq!(p.status, 400, "{q}");
                    assert_eq!(p.field.as_deref(), Some(field), "{q}");
                }
            }
        }
    }
}
