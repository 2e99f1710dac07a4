//! Spend limits per tenant: what a create reserves, what finalize settles.
//!
//! A budget rule (configuration) limits a tenant's spend per period (`day`, `month`, `total`),
//! optionally for one model. Each (rule, period) is a **budget item** in the guard store with
//! the limit, the amount reserved by executions in flight and the amount spent, written only
//! atomically with a guard:
//!
//! - at create, the execution's estimated cost is reserved in the same transaction as its
//!   version 0 ([`crate::GuardStore::insert`]); it does not fit → nothing is written and the
//!   create is refused (`402`, [`BudgetRefusal`]);
//! - at finalize, the commit that records the cost ([`BudgetHold::settled`] at its version)
//!   moves the reservation to `spent` with the actual (billable) cost, in the same transaction
//!   as the guard's conditional write, so it happens exactly once, whatever crashes.
//!
//! An execution keeps the items it reserved on (its [`BudgetHold`]); a period that ends while
//! it runs is still the one it settles in: spend is counted in the period of the create.

use serde::{Deserialize, Serialize};

/// The period a budget counts over (UTC).
#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    Month,
    /// Forever.
    Total,
}

impl BudgetPeriod {
    /// The name (`day`, `month`, `total`).
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Month => "month",
            BudgetPeriod::Total => "total",
        }
    }

    /// The period containing `at_ms`: `2026-12-02`, `2026-12` or `all`.
    pub fn key_at(self, at_ms: i64) -> String {
        let (y, m, d) = civil_from_days(at_ms.div_euclid(86_400_000));
        match self {
            BudgetPeriod::Day => format!("{y:04}-{m:02}-{d:02}"),
            BudgetPeriod::Month => format!("{y:04}-{m:02}"),
            BudgetPeriod::Total => "all".into(),
        }
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A spend limit (configuration: `[[lifecycle.budgets]]`).
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetRule {
    /// The tenant it limits.
    pub tenant: String,
    /// The period it counts over.
    pub period: BudgetPeriod,
    /// The limit in USD.
    pub limit_usd: f64,
    /// Only this model's executions (absent: all of the tenant's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl BudgetRule {
    /// The limit in micro-dollars.
    pub fn limit_usd_micros(&self) -> i64 {
        (self.limit_usd * 1e6).round() as i64
    }

    /// Whether an execution of `tenant` on `model` counts against this rule.
    pub fn applies(&self, tenant: &str, model: &str) -> bool {
        self.tenant == tenant && self.model.as_deref().is_none_or(|m| m == model)
    }

    /// The budget item of this rule for the period containing `at_ms`.
    pub fn line_at(&self, at_ms: i64) -> HoldLine {
        let period_key = self.period.key_at(at_ms);
        let mut key = format!("{}#{}#{}", self.tenant, self.period.as_str(), period_key);
        if let Some(m) = &self.model {
            key.push('#');
            key.push_str(m);
        }
        HoldLine {
            key,
            tenant: self.tenant.clone(),
            period: self.period,
            period_key,
            model: self.model.clone(),
            limit_usd_micros: self.limit_usd_micros(),
        }
    }
}

/// Checks budget rules: tenant names, positive limits, no two rules on the same
/// (tenant, period, model).
pub fn validate_rules(rules: &[BudgetRule]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, r) in rules.iter().enumerate() {
        if r.tenant.is_empty() || r.tenant.contains('#') {
            return Err(format!(
                "budgets[{i}].tenant {:?} is not a tenant name",
                r.tenant
            ));
        }
        if !r.limit_usd.is_finite() || r.limit_usd < 0.0 {
            return Err(format!(
                "budgets[{i}].limit_usd must be a number >= 0 (got {})",
                r.limit_usd
            ));
        }
        if !seen.insert((r.tenant.clone(), r.period, r.model.clone())) {
            return Err(format!(
                "budgets[{i}]: a second {} budget for tenant {:?}{}",
                r.period.as_str(),
                r.tenant,
                r.model
                    .as_ref()
                    .map(|m| format!(" and model {m:?}"))
                    .unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// One budget item an execution reserves on.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldLine {
    /// The item's key: `{tenant}#{period}#{period_key}[#{model}]`.
    pub key: String,
    /// Tenant.
    pub tenant: String,
    /// Period.
    pub period: BudgetPeriod,
    /// Which period (`2026-12`, `2026-12-02`, `all`).
    pub period_key: String,
    /// The model the rule is limited to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The limit when the reservation was made (micro-dollars).
    pub limit_usd_micros: i64,
}

/// What an execution reserved, and how it was settled (part of its committed record).
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetHold {
    /// The items reserved on.
    pub lines: Vec<HoldLine>,
    /// The estimate reserved on each (micro-dollars).
    pub reserved_usd_micros: i64,
    /// The settlement, once finalize recorded the cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled: Option<Settlement>,
}

/// The settlement of a reservation.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    /// The version whose commit settled it (the backend moves the amounts in that commit).
    pub version: u64,
    /// The actual cost charged to the budget (micro-dollars; 0 for an execution not billed).
    pub actual_usd_micros: i64,
}

impl BudgetHold {
    /// Records the settlement on `guard` (the commit about to be made at its version) if its
    /// hold is not settled yet: the billable cost, 0 when the execution is not billed.
    pub fn settle(guard: &mut crate::model::Guard, cost: &crate::model::Cost) {
        let version = guard.version();
        if let Some(hold) = guard.budget.as_mut()
            && hold.settled.is_none()
        {
            hold.settled = Some(Settlement {
                version,
                actual_usd_micros: if cost.billable {
                    cost.provider_usd_micros.max(0)
                } else {
                    0
                },
            });
        }
    }

    /// Whether the commit of `version` is the one that settles (the backend then moves the
    /// reservation to `spent` in the same transaction).
    pub fn settles_at(&self, version: u64) -> bool {
        self.settled.is_some_and(|s| s.version == version)
    }
}

/// A budget item as stored.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetState {
    /// The item (its key and rule).
    #[serde(flatten)]
    pub line: HoldLine,
    /// Reserved by executions in flight (micro-dollars).
    pub reserved_usd_micros: i64,
    /// Settled spend (micro-dollars).
    pub spent_usd_micros: i64,
    /// Executions settled on it.
    pub settled_executions: u64,
}

impl BudgetState {
    /// A fresh item: nothing reserved or spent.
    pub fn empty(line: HoldLine) -> Self {
        BudgetState {
            line,
            reserved_usd_micros: 0,
            spent_usd_micros: 0,
            settled_executions: 0,
        }
    }

    /// What is left (may be negative when actual costs exceeded their estimates).
    pub fn remaining_usd_micros(&self) -> i64 {
        self.line.limit_usd_micros - self.spent_usd_micros - self.reserved_usd_micros
    }

    /// Whether `estimate` more fits under the limit: something is left, and at least the
    /// estimate (an exhausted budget refuses even a free execution).
    pub fn fits(&self, estimate: i64) -> bool {
        let left = self.remaining_usd_micros();
        left > 0 && left >= estimate
    }
}

/// Why a create was refused for its budget (the API's `402`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the estimated cost ${:.6} does not fit the {} budget of tenant {:?}{} (limit ${:.6}, spent ${:.6}, reserved ${:.6})",
    *estimate_usd_micros as f64 / 1e6,
    state.line.period.as_str(),
    state.line.tenant,
    state.line.model.as_ref().map(|m| format!(" for model {m}")).unwrap_or_default(),
    state.line.limit_usd_micros as f64 / 1e6,
    state.spent_usd_micros as f64 / 1e6,
    state.reserved_usd_micros as f64 / 1e6,
)]
pub struct BudgetRefusal {
    /// The item that has no room.
    pub state: BudgetState,
    /// The estimate that did not fit.
    pub estimate_usd_micros: i64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn period_keys_are_utc_calendar_periods() {
        // 2026-12-02T13:00:00Z
        let at = 1_796_216_400_000;
        assert_eq!(BudgetPeriod::Day.key_at(at), "2026-12-02");
        assert_eq!(BudgetPeriod::Month.key_at(at), "2026-12");
        assert_eq!(BudgetPeriod::Total.key_at(at), "all");
        assert_eq!(BudgetPeriod::Day.key_at(0), "1970-01-01");
        // The last millisecond of a leap day and the first of the next.
        let leap = 1_709_251_199_999; // 2024-02-29T23:59:59.999Z
        assert_eq!(BudgetPeriod::Day.key_at(leap), "2024-02-29");
        assert_eq!(BudgetPeriod::Month.key_at(leap + 1), "2024-03");
    }

    #[test]
    fn rules_apply_by_tenant_and_model_and_key_their_items() {
        let all = BudgetRule {
            tenant: "acme".into(),
            period: BudgetPeriod::Month,
            limit_usd: 10.0,
            model: None,
        };
        let one = BudgetRule {
            model: Some("openai/gpt-image-1".into()),
            ..all.clone()
        };
        assert!(all.applies("acme", "x/y"));
        assert!(!all.applies("other", "x/y"));
        assert!(one.applies("acme", "openai/gpt-image-1"));
        assert!(!one.applies("acme", "x/y"));
        let at = 1_796_216_400_000;
        assert_eq!(all.line_at(at).key, "acme#month#2026-12");
        assert_eq!(one.line_at(at).key, "acme#month#2026-12#openai/gpt-image-1");
        assert_eq!(one.line_at(at).limit_usd_micros, 10_000_000);
        assert!(validate_rules(&[all.clone(), one.clone()]).is_ok());
        let err = validate_rules(&[all.clone(), all.clone()]).unwrap_err();
        assert!(err.contains("second month budget"), "{err}");
        let negative = BudgetRule {
            limit_usd: -1.0,
            ..all
        };
        assert!(
            validate_rules(&[negative])
                .unwrap_err()
                .contains("limit_usd")
        );
    }

    #[test]
    fn remaining_and_fit() {
        let rule = BudgetRule {
            tenant: "acme".into(),
            period: BudgetPeriod::Total,
            limit_usd: 1.0,
            model: None,
        };
        let mut s = BudgetState::empty(rule.line_at(0));
        s.spent_usd_micros = 600_000;
        s.reserved_usd_micros = 300_000;
        assert_eq!(s.remaining_usd_micros(), 100_000);
        assert!(s.fits(100_000));
        assert!(!s.fits(100_001));
        assert!(s.fits(0));
        s.spent_usd_micros = 700_000;
        assert!(!s.fits(0), "an exhausted budget refuses a free execution");
        s.spent_usd_micros = 600_000;
        let refusal = BudgetRefusal {
            state: s,
            estimate_usd_micros: 200_000,
        };
        let text = refusal.to_string();
        assert!(text.contains("$0.200000"), "{text}");
        assert!(text.contains("total budget"), "{text}");
    }
}
