//! Failure piles: failed and degraded executions grouped by error class, provider, model and
//! a normalized provider message (numbers, ids and URLs blanked, so "job 81f3 failed after
//! 30s" and "job 9c2e failed after 31s" are one pile), most frequent first.

use crate::model::Guard;
use crate::taxonomy::ErrorClass;
use serde::Serialize;
use std::collections::HashMap;

/// One pile of alike failures.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Pile {
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
