//! Failure piles: failed and degraded executions grouped by error class, provider, model and
//! a normalized provider message (numbers, ids and URLs blanked, so "job 81f3 failed after
//! 30s" and "job 9c2e failed after 31s" are one pile), most frequent first; and the
//! executions the reconciler parked (it failed to re-drive them
//! [`crate::engine::RECONCILE_PARK_AFTER`] times in a row), grouped by provider, model,
//! status and normalized reason.

use crate::model::Guard;
use crate::taxonomy::ErrorClass;
use serde::Serialize;
use std::collections::HashMap;

/// One pile of alike failures.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Pile {
    /// A stable id of the pile ([`pile_id`] of what groups it): `executor failures rerun` names
    /// a pile by it.
    pub id: String,
    /// The error class.
    pub error_class: ErrorClass,
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The provider (or system) message, normalized.
    pub message: String,
    /// Executions in the pile.
    pub count: u64,
    /// When the earliest one failed (ms).
    pub first_seen_ms: i64,
    /// When the latest one failed (ms).
    pub last_seen_ms: i64,
    /// The latest execution of the pile, to explain.
    pub example_execution_id: String,
    /// Every execution of the pile, in listing order (newest created first).
    #[serde(skip)]
    pub execution_ids: Vec<String>,
}

/// A pile of executions the reconciler parked for alike reasons.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ParkedPile {
    /// A stable id of the pile ([`pile_id`]).
    pub id: String,
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The status they are stuck in (a final status: its outbox is not applied).
    pub status: crate::status::Status,
    /// Why the reconciler failed, normalized.
    pub reason: String,
    /// Executions in the pile.
    pub count: u64,
    /// The most failed tries in a row of one of them.
    pub failures: u32,
    /// When the earliest first failure was (ms).
    pub first_failure_ms: i64,
    /// When the latest failure was (ms).
    pub last_failure_ms: i64,
    /// The execution that failed last, to explain.
    pub example_execution_id: String,
    /// Every execution of the pile, in listing order (newest created first).
    #[serde(skip)]
    pub execution_ids: Vec<String>,
}

/// The id of a pile: `pile_` and 12 hex digits of a hash of what groups it (`kind` is
/// `failed` or `parked`), the same for the same pile in every listing.
pub fn pile_id(kind: &str, parts: &[&str]) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(kind.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    let digest = hex::encode(h.finalize());
    format!("pile_{}", &digest[..12])
}

/// Groups the parked executions among `guards` ([`Guard::parked`]) into piles, most
/// frequent first (then most recent). Others are ignored.
pub fn group_parked<'a>(guards: impl IntoIterator<Item = &'a Guard>) -> Vec<ParkedPile> {
    let mut piles: HashMap<(String, String, crate::status::Status, String), ParkedPile> =
        HashMap::new();
    for g in guards {
        let Some(f) = g.parked() else { continue };
        let reason = normalize_message(&f.reason);
        let key = (
            g.provider.clone(),
            g.model.clone(),
            g.status(),
            reason.clone(),
        );
        let pile = piles.entry(key).or_insert_with(|| ParkedPile {
            id: pile_id(
                "parked",
                &[&g.provider, &g.model, g.status().as_str(), &reason],
            ),
            execution_ids: Vec::new(),
            provider: g.provider.clone(),
            model: g.model.clone(),
            status: g.status(),
            reason,
            count: 0,
            failures: 0,
            first_failure_ms: f.first_failure_ms,
            last_failure_ms: f.last_failure_ms,
            example_execution_id: g.id.clone(),
        });
        pile.count += 1;
        pile.execution_ids.push(g.id.clone());
        pile.failures = pile.failures.max(f.failures);
        pile.first_failure_ms = pile.first_failure_ms.min(f.first_failure_ms);
        if f.last_failure_ms >= pile.last_failure_ms {
            pile.last_failure_ms = f.last_failure_ms;
            pile.example_execution_id = g.id.clone();
        }
    }
    let mut out: Vec<ParkedPile> = piles.into_values().collect();
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.last_failure_ms.cmp(&a.last_failure_ms))
            .then(a.reason.cmp(&b.reason))
    });
    out
}

/// The message of a failure with what varies between occurrences blanked: URLs become
/// `<url>`, id-like tokens (long, with digits) `<id>`, numbers `<n>`; at most 200 characters.
pub fn normalize_message(message: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for token in message.split_whitespace() {
        let core = token.trim_matches(|c: char| "()[]{}\"'`,;:.".contains(c));
        let (lead, trail) = match token.find(core) {
            Some(i) if !core.is_empty() => (&token[..i], &token[i + core.len()..]),
            _ => ("", ""),
        };
        let replaced = if core.starts_with("http://") || core.starts_with("https://") {
            Some("<url>".to_string())
        } else if core.chars().any(|c| c.is_ascii_digit()) {
            if core
                .chars()
                .all(|c| c.is_ascii_digit() || ".,_-+".contains(c))
            {
                Some("<n>".to_string())
            } else if core.len() >= 8 {
                Some("<id>".to_string())
            } else {
                // A number with a unit (30s, 512MB): keep the unit.
                let mut s = String::new();
                let mut in_digits = false;
                for c in core.chars() {
                    if c.is_ascii_digit() {
                        if !in_digits {
                            s.push_str("<n>");
                        }
                        in_digits = true;
                    } else {
                        in_digits = false;
                        s.push(c);
                    }
                }
                Some(s)
            }
        } else {
            None
        };
        match replaced {
            Some(r) => out.push(format!("{lead}{r}{trail}")),
            None => out.push(token.to_string()),
        }
    }
    let mut s = out.join(" ");
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The time an execution failed: its terminal time, else its last change.
fn failed_at(g: &Guard) -> i64 {
    g.hot.terminal_at_ms.unwrap_or(g.updated_at_ms)
}

/// Groups the failed or degraded executions among `guards` into piles, most frequent first
/// (then most recent). Executions without an error are ignored.
pub fn group<'a>(guards: impl IntoIterator<Item = &'a Guard>) -> Vec<Pile> {
    let mut piles: HashMap<(ErrorClass, String, String, String), Pile> = HashMap::new();
    for g in guards {
        let Some(failure) = g.hot.error.as_ref().or(g.hot.delivery_error.as_ref()) else {
            continue;
        };
        let message = normalize_message(&failure.message);
        let at = failed_at(g);
        let key = (
            failure.class,
            g.provider.clone(),
            g.model.clone(),
            message.clone(),
        );
        let pile = piles.entry(key).or_insert_with(|| Pile {
            id: pile_id(
                "failed",
                &[failure.class.as_str(), &g.provider, &g.model, &message],
            ),
            execution_ids: Vec::new(),
            error_class: failure.class,
            provider: g.provider.clone(),
            model: g.model.clone(),
            message,
            count: 0,
            first_seen_ms: at,
            last_seen_ms: at,
            example_execution_id: g.id.clone(),
        });
        pile.count += 1;
        pile.execution_ids.push(g.id.clone());
        pile.first_seen_ms = pile.first_seen_ms.min(at);
        if at >= pile.last_seen_ms {
            pile.last_seen_ms = at;
            pile.example_execution_id = g.id.clone();
        }
    }
    let mut out: Vec<Pile> = piles.into_values().collect();
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.last_seen_ms.cmp(&a.last_seen_ms))
            .then(a.message.cmp(&b.message))
    });
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn guard(id: &str, failures: Option<(u64, u32, i64)>) -> Guard {
        let req = crate::model::ExecutionRequest {
            retries: None,
            fallbacks: Default::default(),
            id: id.into(),
            tenant: "t".into(),
            model: "m".into(),
            input: serde_json::json!({}),
            webhook_url: None,
            idempotency_key: None,
            created_at_ms: 1_000,
            max_duration_ms: 60_000,
        };
        let mut g = Guard::accepted(&req, "p", crate::model::Shape::Polling);
        g.reconcile_failures =
            failures.map(|(version, failures, at)| crate::model::ReconcileFailures {
                version,
                failures,
                first_failure_ms: at - 100,
                last_failure_ms: at,
                reason: format!("backend unavailable: sink refused evt_{id}"),
            });
        g
    }

    #[test]
    fn parked_executions_pile_up_by_reason_and_stale_or_young_records_do_not() {
        let guards = [
            guard("ex_aaaaaaaa1", Some((0, 5, 2_000))),
            guard("ex_aaaaaaaa2", Some((0, 7, 3_000))),
            // Failing, not parked yet.
            guard("ex_aaaaaaaa3", Some((0, 4, 4_000))),
            // About a version the execution has left: stale.
            guard("ex_aaaaaaaa4", Some((3, 9, 5_000))),
            guard("ex_aaaaaaaa5", None),
        ];
        let piles = group_parked(&guards);
        assert_eq!(piles.len(), 1, "{piles:?}");
        let p = &piles[0];
        assert_eq!(p.count, 2);
        assert_eq!(p.failures, 7);
        assert_eq!(p.first_failure_ms, 1_900);
        assert_eq!(p.last_failure_ms, 3_000);
        assert_eq!(p.example_execution_id, "ex_aaaaaaaa2");
        assert_eq!(p.reason, "backend unavailable: sink refused <id>");
        assert_eq!(p.status, crate::status::Status::Queued);
        assert!(guards[0].parked().is_some());
        assert!(guards[2].reconcile_failing().is_some() && guards[2].parked().is_none());
        assert!(guards[3].reconcile_failing().is_none());
        // Parked is not failed: the failure piles do not count them.
        assert!(group(&guards).is_empty());
    }

    #[test]
    fn varying_parts_are_blanked() {
        assert_eq!(
            normalize_message("job 81f3a9c2e7 failed after 30s (attempt 2)"),
            "job <id> failed after <n>s (attempt <n>)"
        );
        assert_eq!(
            normalize_message("could not fetch https://cdn.example.com/x/1.png: 404"),
            "could not fetch <url>: <n>"
        );
        assert_eq!(
            normalize_message("job 9c2e11d4aa failed after 31s (attempt 3)"),
            normalize_message("job 81f3a9c2e7 failed after 30s (attempt 2)")
        );
        assert_eq!(
            normalize_message("NSFW content detected"),
            "NSFW content detected"
        );
        assert!(normalize_message(&"word ".repeat(100)).chars().count() <= 201);
    }
}
