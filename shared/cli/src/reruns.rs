//! `executor failures rerun PILE`: rerun every execution of a failure pile after a fix.
//!
//! The pile is read from `GET /v1/failures/{pile}` (the same window as `executor failures`);
//! each of its executions is rerun with `POST /v1/executions/{id}/rerun`. An execution that
//! was rerun already (its `reruns` is not empty) is skipped, and each rerun carries the
//! Idempotency-Key `failures-rerun:{id}`, so running the command twice, or two operators at
//! once, reruns each execution once. `--dry-run` lists what would be rerun and changes
//! nothing.

use crate::client::Client;
use anyhow::Result;
use serde::Serialize;

/// What happened (or, dry, would happen) to one execution of the pile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RerunAction {
    /// Dry run: it would be rerun.
    WouldRerun,
    /// Rerun as this new execution.
    Rerun {
        /// The new execution.
        rerun_id: String,
    },
    /// Rerun before (by an earlier run of the command, or by hand): left alone.
    AlreadyRerun {
        /// Its reruns.
        reruns: Vec<String>,
    },
    /// The rerun was refused.
    Failed {
        /// HTTP status.
        status: u16,
        /// The problem's detail.
        detail: String,
    },
}

/// One execution of the pile.
#[derive(Debug, Clone, Serialize)]
pub struct RerunLine {
    /// The execution of the pile.
    pub execution_id: String,
    /// What was done.
    #[serde(flatten)]
    pub action: RerunAction,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RerunReport {
    /// The pile.
    pub pile: String,
    /// `failed` or `parked`.
    pub kind: String,
    /// True for `--dry-run`.
    pub dry_run: bool,
    /// One line per execution of the pile.
    pub lines: Vec<RerunLine>,
}

impl RerunReport {
    /// Lines that failed.
    pub fn failed(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| matches!(l.action, RerunAction::Failed { .. }))
            .count()
    }

    /// Text for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            let what = match &l.action {
                RerunAction::WouldRerun => "would rerun".to_string(),
                RerunAction::Rerun { rerun_id } => format!("rerun as {rerun_id}"),
                RerunAction::AlreadyRerun { reruns } => {
                    format!("skipped: rerun already as {}", reruns.join(", "))
                }
                RerunAction::Failed { status, detail } => format!("failed: {status} {detail}"),
            };
            out.push_str(&format!("{}: {what}\n", l.execution_id));
        }
        let count =
            |f: fn(&RerunAction) -> bool| self.lines.iter().filter(|l| f(&l.action)).count();
        if self.dry_run {
            out.push_str(&format!(
                "dry run: {} of {} executions of pile {} ({}) would be rerun; nothing was changed\n",
                count(|a| matches!(a, RerunAction::WouldRerun)),
                self.lines.len(),
                self.pile,
                self.kind
            ));
        } else {
            out.push_str(&format!(
                "{} rerun, {} skipped, {} failed (pile {}, {})\n",
                count(|a| matches!(a, RerunAction::Rerun { .. })),
                count(|a| matches!(a, RerunAction::AlreadyRerun { .. })),
                self.failed(),
                self.pile,
                self.kind
            ));
        }
        out
    }
}

/// Options of a pile rerun.
#[derive(Debug, Clone, Default)]
pub struct RerunPileOptions {
    /// The window of `executor failures` (`24h`).
    pub since: String,
    /// The `--model` filter of the listing the pile is from.
    pub model: Option<String>,
    /// The `--provider` filter of the listing the pile is from.
    pub provider: Option<String>,
    /// Rerun on this model instead of each execution's own.
    pub to_model: Option<String>,
    /// List, change nothing.
    pub dry_run: bool,
}

/// Reruns (or, dry, lists) every execution of `pile`.
pub async fn rerun_pile(
    client: &Client,
    pile: &str,
    opts: &RerunPileOptions,
) -> Result<RerunReport> {
    let since = if opts.since.is_empty() {
        "24h"
    } else {
        opts.since.as_str()
    };
    let members = client
        .failure_pile(pile, since, opts.model.as_deref(), opts.provider.as_deref())
        .await?;
    let ids: Vec<String> = members["execution_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut lines = Vec::with_capacity(ids.len());
    for id in ids {
        let view = client.get(&id).await?;
        let reruns: Vec<String> = view["reruns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let action = if !reruns.is_empty() {
            RerunAction::AlreadyRerun { reruns }
        } else if opts.dry_run {
            RerunAction::WouldRerun
        } else {
            let key = format!("failures-rerun:{id}");
            let (status, body) = client
                .rerun(&id, opts.to_model.as_deref(), Some(&key))
                .await?;
            match body["id"].as_str() {
                Some(rerun_id) if status < 300 => RerunAction::Rerun {
                    rerun_id: rerun_id.to_string(),
                },
                _ => RerunAction::Failed {
                    status,
                    detail: body["detail"].as_str().unwrap_or("no detail").to_string(),
                },
            }
        };
        lines.push(RerunLine {
            execution_id: id,
            action,
        });
    }
    Ok(RerunReport {
        pile: pile.to_string(),
        kind: members["kind"].as_str().unwrap_or("?").to_string(),
        dry_run: opts.dry_run,
        lines,
    })
}
