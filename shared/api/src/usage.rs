//! `GET /v1/usage`: the caller's executions of a window counted and costed, grouped by model,
//! provider, day or error class, as JSON or CSV (`Accept: text/csv`), with the tenant's budgets
//! as stored (limit, spent, reserved). Read from the index, never from blobs.

use crate::ApiState;
use crate::auth::authorize;
use crate::failures::{MAX_SCANNED, scan};
use crate::problem::Problem;
use crate::view::rfc3339;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use executor_lifecycle::budget::BudgetPeriod;
use executor_lifecycle::{BudgetState, Guard, ListQuery, Status};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Micro-dollars as dollars.
pub fn usd(micros: i64) -> f64 {
    micros as f64 / 1e6
}

/// A budget as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetView {
    /// The budget item (`{tenant}#{period}#{period_key}[#{model}]`).
    pub key: String,
    /// The period it counts over.
    pub period: BudgetPeriod,
    /// Which period (`2026-12`, `2026-12-02`, `all`).
    pub period_key: String,
    /// The model it is limited to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The limit (USD).
    pub limit_usd: f64,
    /// Settled spend of finished executions (USD).
    pub spent_usd: f64,
    /// Reserved by executions in flight: their estimates until they finish (USD).
    pub reserved_usd: f64,
    /// What is left: limit − spent − reserved (USD; negative when actual costs exceeded their
    /// estimates).
    pub remaining_usd: f64,
    /// Executions settled on it.
    pub settled_executions: u64,
}

impl From<&BudgetState> for BudgetView {
    fn from(s: &BudgetState) -> Self {
        BudgetView {
            key: s.line.key.clone(),
            period: s.line.period,
            period_key: s.line.period_key.clone(),
            model: s.line.model.clone(),
            limit_usd: usd(s.line.limit_usd_micros),
            spent_usd: usd(s.spent_usd_micros),
            reserved_usd: usd(s.reserved_usd_micros),
            remaining_usd: usd(s.remaining_usd_micros()),
            settled_executions: s.settled_executions,
        }
    }
}

/// Counts and cost of a group of executions.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct UsageGroup {
    /// The group (a model id, a provider, a UTC day `YYYY-MM-DD`, an error class or `none`);
    /// `total` for the whole window.
    pub key: String,
    /// Executions created in the window.
    pub executions: u64,
    /// Of which succeeded.
    pub succeeded: u64,
    /// Failed.
    pub failed: u64,
    /// Canceled.
    pub canceled: u64,
    /// Timed out.
    pub timed_out: u64,
    /// Not ended yet.
    pub in_progress: u64,
    /// Executions billed (succeeded with a result).
    pub billable: u64,
    /// Their cost (USD): what the budgets count as spent.
    pub cost_usd: f64,
    /// The same in micro-dollars (exact).
    pub cost_usd_micros: i64,
    /// Estimates still reserved on budgets by the executions in flight (USD).
    pub reserved_usd: f64,
}

impl UsageGroup {
    fn add(&mut self, g: &Guard) {
        self.executions += 1;
        match g.hot.outcome.unwrap_or(g.status()) {
            Status::Succeeded => self.succeeded += 1,
            Status::Failed => self.failed += 1,
            Status::Canceled => self.canceled += 1,
            Status::TimedOut => self.timed_out += 1,
            _ => self.in_progress += 1,
        }
        if let Some(c) = g.hot.cost.as_ref().filter(|c| c.billable) {
            self.billable += 1;
            self.cost_usd_micros += c.provider_usd_micros;
            self.cost_usd = usd(self.cost_usd_micros);
        }
        if let Some(hold) = g.budget.as_ref().filter(|h| h.settled.is_none()) {
            self.reserved_usd += usd(hold.reserved_usd_micros);
        }
    }
}

/// How `GET /v1/usage` groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// By model id.
    Model,
    /// By provider.
    Provider,
    /// By UTC day of creation.
    Day,
    /// By error class (`none` for executions without an error).
    ErrorClass,
}

impl GroupBy {
    fn parse(s: &str) -> Option<GroupBy> {
        Some(match s {
            "model" => GroupBy::Model,
            "provider" => GroupBy::Provider,
            "day" => GroupBy::Day,
            "error_class" => GroupBy::ErrorClass,
            _ => return None,
        })
    }

    fn key(self, g: &Guard) -> String {
        match self {
            GroupBy::Model => g.model.clone(),
            GroupBy::Provider => g.provider.clone(),
            GroupBy::Day => BudgetPeriod::Day.key_at(g.created_at_ms),
            GroupBy::ErrorClass => g
                .error_class()
                .map_or_else(|| "none".to_string(), |c| c.as_str().to_string()),
        }
    }
}

/// The usage of a window.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    /// Always `usage`.
    #[schema(value_type = String, example = "usage")]
    pub object: &'static str,
    /// Executions created at or after this time (RFC 3339).
    pub from: String,
    /// ... and before this time (RFC 3339).
    pub to: String,
    /// How `data` is grouped.
    pub group_by: GroupBy,
    /// True when the window held more executions than one report reads (the newest are
    /// counted); narrow the window.
    pub truncated: bool,
    /// The whole window.
    pub total: UsageGroup,
    /// The groups, by key.
    pub data: Vec<UsageGroup>,
    /// The tenant's budgets for the current periods, as stored.
    pub budgets: Vec<BudgetView>,
}

#[derive(Debug)]
struct Params {
    from_ms: i64,
    to_ms: i64,
    group_by: GroupBy,
}

/// A time bound: RFC 3339 (`2026-12-01T00:00:00Z`) or a UTC date (`2026-12-01`).
fn parse_time(name: &str, value: &str) -> Result<i64, Problem> {
    let text = if value.len() == 10 {
        format!("{value}T00:00:00Z")
    } else {
        value.to_string()
    };
    humantime::parse_rfc3339_weak(&text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| {
            Problem::bad_query(
                name,
                format!(
                    "{name} must be an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01), got {value:?}"
                ),
            )
        })
}

/// The first millisecond of the UTC month containing `at_ms`.
fn month_start(at_ms: i64) -> i64 {
    let month = BudgetPeriod::Month.key_at(at_ms);
    parse_time("from", &format!("{month}-01")).unwrap_or(0)
}

fn parse(raw: Option<&str>, now_ms: i64) -> Result<Params, Problem> {
    let mut from = None;
    let mut to = None;
    let mut group_by = GroupBy::Model;
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "from" => from = Some(parse_time("from", &value)?),
            "to" => to = Some(parse_time("to", &value)?),
            "group_by" => {
                group_by = GroupBy::parse(&value).ok_or_else(|| {
                    Problem::bad_query(
                        "group_by",
                        format!(
                            "group_by must be one of model, provider, day, error_class (got {value:?})"
                        ),
                    )
                })?;
            }
            other => {
                return Err(Problem::bad_query(
                    other,
                    format!("unknown query parameter '{other}'; known: from, to, group_by"),
                ));
            }
        }
    }
    let to_ms = to.unwrap_or(now_ms + 1);
    let from_ms = from.unwrap_or_else(|| month_start(now_ms));
    if from_ms >= to_ms {
        return Err(Problem::bad_query(
            "from",
            format!(
                "from ({}) must be before to ({})",
                rfc3339(from_ms),
                rfc3339(to_ms)
            ),
        ));
    }
    Ok(Params {
        from_ms,
        to_ms,
        group_by,
    })
}

/// Whether the client asks for CSV: `text/csv` is listed before `application/json` (or JSON
/// is not listed).
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|v| v.split(';').next().map(str::trim))
        .find(|m| *m == "text/csv" || *m == "application/json")
        == Some("text/csv")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The report as CSV: a header and one row per group.
pub fn to_csv(report: &UsageReport) -> String {
    let mut out = String::from(
        "group,executions,succeeded,failed,canceled,timed_out,in_progress,billable,cost_usd,cost_usd_micros,reserved_usd\n",
    );
    for g in &report.data {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{:.6},{},{:.6}\n",
            csv_field(&g.key),
            g.executions,
            g.succeeded,
            g.failed,
            g.canceled,
            g.timed_out,
            g.in_progress,
            g.billable,
            g.cost_usd,
            g.cost_usd_micros,
            g.reserved_usd
        ));
    }
    out
}

/// Counts and cost of the caller's executions.
///
/// Counts the executions created in the window (`from` inclusive, `to` exclusive; default:
/// this UTC month until now) by outcome, with their billed cost, grouped by `group_by`, and
/// shows the tenant's budgets for the current periods. `Accept: text/csv` answers the groups
/// as CSV.
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "executions",
    operation_id = "usage",
    params(
        ("from" = Option<String>, Query, description = "Start (inclusive): RFC 3339 or a UTC date; default the start of this UTC month", example = "2026-12-01"),
        ("to" = Option<String>, Query, description = "End (exclusive): RFC 3339 or a UTC date; default now", example = "2026-12-02T00:00:00Z"),
        ("group_by" = Option<String>, Query, description = "model (default), provider, day or error_class", example = "model"),
    ),
    responses(
        (status = 200, description = "The usage of the window", content(
            (UsageReport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A bad query parameter (named in `field`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn usage(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let now = state.engine.ports().clock.now_ms();
    let p = parse(raw.as_deref(), now)?;
    let report = report(&state, &tenant, &p, now).await?;
    if wants_csv(&headers) {
        return Ok((
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            )],
            to_csv(&report),
        )
            .into_response());
    }
    Ok(Json(report).into_response())
}

async fn report(
    state: &ApiState,
    tenant: &str,
    p: &Params,
    now: i64,
) -> Result<UsageReport, Problem> {
    let query = ListQuery {
        created_after_ms: Some(p.from_ms),
        created_before_ms: Some(p.to_ms),
        limit: 500,
        ..Default::default()
    };
    let (guards, truncated) = scan(state, tenant, query).await?;
    let mut total = UsageGroup {
        key: "total".into(),
        ..Default::default()
    };
    let mut groups: BTreeMap<String, UsageGroup> = BTreeMap::new();
    for g in guards.iter().take(MAX_SCANNED) {
        total.add(g);
        let key = p.group_by.key(g);
        groups
            .entry(key.clone())
            .or_insert_with(|| UsageGroup {
                key,
                ..Default::default()
            })
            .add(g);
    }
    let budgets = state.engine.budgets(tenant, now).await?;
    Ok(UsageReport {
        object: "usage",
        from: rfc3339(p.from_ms),
        to: rfc3339(p.to_ms),
        group_by: p.group_by,
        truncated,
        total,
        data: groups.into_values().collect(),
        budgets: budgets.iter().map(BudgetView::from).collect(),
    })
}

/// A budget an estimate would reserve on.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EstimateBudget {
    /// The budget as stored now.
    #[serde(flatten)]
    pub budget: BudgetView,
    /// Whether the estimate fits it now (a create would be accepted by it).
    pub fits: bool,
}

/// The estimated cost of a create.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Estimate {
    /// Always `estimate`.
    #[schema(value_type = String, example = "estimate")]
    pub object: &'static str,
    /// The model.
    pub model: String,
    /// The estimate (USD): what a create reserves on the tenant's budgets.
    pub estimate_usd: f64,
    /// The same in micro-dollars.
    pub estimate_usd_micros: i64,
    /// The most the request can cost with its fallback chain (its dearest step; failed
    /// attempts are not billed): what a create reserves on the budgets (USD).
    pub worst_case_usd: f64,
    /// How it is made up: each line's quantity says where it came from (the input, the
    /// model's typical usage, or a default).
    pub lines: Vec<executor_lifecycle::CostLine>,
    /// The tenant's budgets that apply to the model, with whether the estimate fits.
    pub budgets: Vec<EstimateBudget>,
}

/// Estimates the cost of a create.
///
/// The same body as `POST /v1/executions`, validated the same way (a `400` names the field);
/// answers the model's pricing applied to the input and whether it fits the tenant's
/// budgets. Nothing is created.
#[utoipa::path(
    post,
    path = "/v1/estimates",
    tag = "executions",
    operation_id = "estimate",
    request_body = crate::executions::CreateBody,
    responses(
        (status = 200, description = "The estimate", body = Estimate),
        (status = 400, description = "Invalid body or input (the failing field is a JSON pointer)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than the API accepts", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Backend unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn estimate(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Estimate>, Problem> {
    let tenant = authorize(&state, &headers).await?;
    let parsed: crate::executions::CreateBody = crate::executions::parse_body(&headers, &body)?;
    let model = parsed.model.clone();
    let req = executor_lifecycle::CreateRequest {
        model: parsed.model,
        input: parsed.input,
        webhook_url: parsed.webhook_url,
        max_duration_seconds: parsed.max_duration_seconds,
        fallbacks: crate::executions::targets(parsed.fallbacks),
        retries: parsed.retries,
        ..Default::default()
    };
    let (cost, worst, budgets) = state.engine.estimate(&tenant, req).await?;
    Ok(Json(Estimate {
        object: "estimate",
        model,
        estimate_usd: usd(cost.provider_usd_micros),
        estimate_usd_micros: cost.provider_usd_micros,
        worst_case_usd: usd(worst),
        lines: cost.lines,
        budgets: budgets
            .iter()
            .map(|(b, fits)| EstimateBudget {
                budget: BudgetView::from(b),
                fits: *fits,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn windows_default_to_this_month_and_refuse_nonsense() {
        // 2026-12-02T13:00:00Z
        let now = 1_796_216_400_000;
        let p = parse(None, now).unwrap();
        assert_eq!(rfc3339(p.from_ms), "2026-12-01T00:00:00.000Z");
        assert_eq!(p.to_ms, now + 1);
        assert_eq!(p.group_by, GroupBy::Model);
        let p = parse(
            Some("from=2026-11-01&to=2026-11-03T12:00:00Z&group_by=day"),
            now,
        )
        .unwrap();
        assert_eq!(rfc3339(p.from_ms), "2026-11-01T00:00:00.000Z");
        assert_eq!(rfc3339(p.to_ms), "2026-11-03T12:00:00.000Z");
        assert_eq!(p.group_by, GroupBy::Day);
        let e = parse(Some("group_by=week"), now).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("/query/group_by"));
        let e = parse(Some("from=yesterday"), now).unwrap_err();
        assert!(e.detail.contains("RFC 3339"), "{}", e.detail);
        let e = parse(Some("from=2026-12-02&to=2026-12-01"), now).unwrap_err();
        assert!(e.detail.contains("must be before"), "{}", e.detail);
        let e = parse(Some("since=1d"), now).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("/query/since"));
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("openai/gpt-image-1"), "openai/gpt-image-1");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("text/csv"));
        assert!(wants_csv(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/plain, text/csv;q=0.9"),
        );
        assert!(wants_csv(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/csv;q=0.9"),
        );
        assert!(!wants_csv(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(!wants_csv(&h));
    }
}
