//! The whole transition table, in one place.
//!
//! Every status change of every execution goes through [`apply`]: given the current status and
//! an [`Event`], it returns the next status or refuses. The table is data ([`TABLE`]); a test
//! renders it into `docs/transitions.md` and fails when the docs drift.

use crate::status::Status;
use serde::{Deserialize, Serialize};

/// What happened to an execution. Events carry no payload; the action that raises one records
/// the details in the transition record.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The API accepted the request (the first commit, version 0).
    Accepted,
    /// The provider has no free capacity (inflight limit or open breaker): wait, then retry.
    CapacityWait,
    /// Submit intent committed: the create call is about to be made.
    SubmitStarted,
    /// The create call failed in a way that certainly created no job and may succeed later.
    SubmitRetry,
    /// The provider accepted the job and gave its id.
    JobCreated,
    /// The provider answered with the final result in the same call (immediate shape).
    CompletedInline,
    /// The submit failed for good (validation, fatal provider error, retries exhausted).
    SubmitFailed,
    /// A submit intent was found without a job id; policy says fail safe.
    SubmitAmbiguous,
    /// A poll (or callback) found the job still waiting or running; nothing else changed.
    StillPending,
    /// The provider reports the job started running.
    Started,
    /// The provider reports success.
    JobSucceeded,
    /// The provider reports failure, or polling failed for good.
    JobFailed,
    /// Canceled on request (or the provider reports the job canceled).
    Canceled,
    /// The execution exceeded its maximum duration.
    DeadlineExceeded,
    /// Outcome delivery failed and will be retried.
    DeliveryRetry,
    /// The outcome was delivered.
    Delivered,
    /// Outcome delivery failed for good; parked for redrive.
    DeliveryFailed,
    /// A parked delivery was redriven successfully.
    Redelivered,
    /// The attempt failed with a class its fallback chain falls back on: the execution goes
    /// back to `queued` for the chain's next model (one execution id, another attempt).
    FellBack,
    /// The attempt's job failed after it was created with a transient class and the chain's
    /// next step repeats the model (`retries`): back to `queued` for the same model's submit,
    /// after a backoff.
    Retried,
}

impl Event {
    /// Every event, in lifecycle order.
    pub const ALL: [Event; 20] = [
        Event::Accepted,
        Event::CapacityWait,
        Event::SubmitStarted,
        Event::SubmitRetry,
        Event::JobCreated,
        Event::CompletedInline,
        Event::SubmitFailed,
        Event::SubmitAmbiguous,
        Event::StillPending,
        Event::Started,
        Event::JobSucceeded,
        Event::JobFailed,
        Event::Canceled,
        Event::DeadlineExceeded,
        Event::DeliveryRetry,
        Event::Delivered,
        Event::DeliveryFailed,
        Event::Redelivered,
        Event::FellBack,
        Event::Retried,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Accepted => "accepted",
            Event::CapacityWait => "capacity_wait",
            Event::SubmitStarted => "submit_started",
            Event::SubmitRetry => "submit_retry",
            Event::JobCreated => "job_created",
            Event::CompletedInline => "completed_inline",
            Event::SubmitFailed => "submit_failed",
            Event::SubmitAmbiguous => "submit_ambiguous",
            Event::StillPending => "still_pending",
            Event::Started => "started",
            Event::JobSucceeded => "job_succeeded",
            Event::JobFailed => "job_failed",
            Event::Canceled => "canceled",
            Event::DeadlineExceeded => "deadline_exceeded",
            Event::DeliveryRetry => "delivery_retry",
            Event::Delivered => "delivered",
            Event::DeliveryFailed => "delivery_failed",
            Event::Redelivered => "redelivered",
            Event::FellBack => "fell_back",
            Event::Retried => "retried",
        }
    }
}

/// Where a rule leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// To this status.
    Status(Status),
    /// Stays where it is (a committed step that changes hot state only).
    Same,
}

/// One row of the table: from any of `from`, on `event`, go `to`.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Statuses the rule applies to.
    pub from: &'static [Status],
    /// The event.
    pub event: Event,
    /// The result.
    pub to: To,
}

use Status::*;

const PRE_SUBMIT: &[Status] = &[Queued];
const ACTIVE: &[Status] = &[Submitted, Running];
const CANCELABLE: &[Status] = &[Queued, Submitted, Running];
const TERMINAL: &[Status] = &[Succeeded, Failed, Canceled, TimedOut];

/// The transition table. Accepted has no `from`: it creates version 0 in `queued`.
pub const TABLE: &[Rule] = &[
    Rule {
        from: &[],
        event: Event::Accepted,
        to: To::Status(Queued),
    },
    Rule {
        from: PRE_SUBMIT,
        event: Event::CapacityWait,
        to: To::Same,
    },
    Rule {
        from: PRE_SUBMIT,
        event: Event::SubmitStarted,
        to: To::Status(Submitting),
    },
    Rule {
        from: PRE_SUBMIT,
        event: Event::SubmitFailed,
        to: To::Status(Failed),
    },
    Rule {
        from: &[Submitting],
        event: Event::SubmitRetry,
        to: To::Status(Queued),
    },
    Rule {
        from: &[Submitting],
        event: Event::JobCreated,
        to: To::Status(Submitted),
    },
    Rule {
        from: &[Submitting],
        event: Event::CompletedInline,
        to: To::Status(Succeeded),
    },
    Rule {
        from: &[Submitting],
        event: Event::SubmitFailed,
        to: To::Status(Failed),
    },
    Rule {
        from: &[Submitting],
        event: Event::SubmitAmbiguous,
        to: To::Status(Failed),
    },
    Rule {
        from: &[Submitting],
        event: Event::DeadlineExceeded,
        to: To::Status(TimedOut),
    },
    Rule {
        from: ACTIVE,
        event: Event::StillPending,
        to: To::Same,
    },
    Rule {
        from: &[Submitted],
        event: Event::Started,
        to: To::Status(Running),
    },
    Rule {
        from: ACTIVE,
        event: Event::JobSucceeded,
        to: To::Status(Succeeded),
    },
    Rule {
        from: ACTIVE,
        event: Event::JobFailed,
        to: To::Status(Failed),
    },
    Rule {
        from: CANCELABLE,
        event: Event::Canceled,
        to: To::Status(Canceled),
    },
    Rule {
        from: CANCELABLE,
        event: Event::DeadlineExceeded,
        to: To::Status(TimedOut),
    },
    Rule {
        from: TERMINAL,
        event: Event::DeliveryRetry,
        to: To::Same,
    },
    Rule {
        from: TERMINAL,
        event: Event::Delivered,
        to: To::Status(Finalized),
    },
    Rule {
        from: TERMINAL,
        event: Event::DeliveryFailed,
        to: To::Status(FinalizedDegraded),
    },
    Rule {
        from: &[FinalizedDegraded],
        event: Event::Redelivered,
        to: To::Status(Finalized),
    },
    Rule {
        from: &[Queued, Submitting, Submitted, Running],
        event: Event::FellBack,
        to: To::Status(Queued),
    },
    Rule {
        from: &[Queued, Submitting, Submitted, Running],
        event: Event::Retried,
        to: To::Status(Queued),
    },
];

/// A transition the table does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal transition: {from} on {}", event.as_str())]
pub struct IllegalTransition {
    /// The status the execution was in.
    pub from: Status,
    /// The refused event.
    pub event: Event,
}

/// The next status for `event` in `from`, or the refusal.
pub fn apply(from: Status, event: Event) -> Result<Status, IllegalTransition> {
    TABLE
        .iter()
        .find(|r| r.event == event && r.from.contains(&from))
        .map(|r| match r.to {
            To::Status(s) => s,
            To::Same => from,
        })
        .ok_or(IllegalTransition { from, event })
}

/// The table as a Markdown page with a Mermaid diagram, exactly as committed in
/// `docs/transitions.md`.
pub fn render_markdown() -> String {
    let mut out = String::new();
    out.push_str("# Execution transitions\n\n");
    out.push_str(
        "Generated from `shared/lifecycle/src/transitions.rs` by the test \
         `transitions::tests::docs_match_the_table`; do not edit by hand \
         (run `UPDATE_DOCS=1 cargo test -p executor-lifecycle` to regenerate).\n\n",
    );
    out.push_str("```mermaid\nstateDiagram-v2\n");
    for rule in TABLE {
        if rule.from.is_empty() {
            if let To::Status(s) = rule.to {
                out.push_str(&format!(
                    "    [*] --> {}: {}\n",
                    s.as_str(),
                    rule.event.as_str()
                ));
            }
            continue;
        }
        for from in rule.from {
            let to = match rule.to {
                To::Status(s) => s,
                To::Same => *from,
            };
            out.push_str(&format!(
                "    {} --> {}: {}\n",
                from.as_str(),
                to.as_str(),
                rule.event.as_str()
            ));
        }
    }
    for s in Status::ALL.iter().filter(|s| s.is_final()) {
        out.push_str(&format!("    {} --> [*]\n", s.as_str()));
    }
    out.push_str("```\n\n## Table\n\n| from | event | to |\n|---|---|---|\n");
    for rule in TABLE {
        let from = if rule.from.is_empty() {
            "(new)".to_string()
        } else {
            rule.from
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let to = match rule.to {
            To::Status(s) => s.as_str().to_string(),
            To::Same => "(same)".to_string(),
        };
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            from,
            rule.event.as_str(),
            to
        ));
    }
    out.push_str("\nTerminal statuses (provider work over): ");
    let terminal: Vec<_> = Status::ALL
        .iter()
        .filter(|s| s.is_terminal() && !s.is_final())
        .map(|s| format!("`{}`", s.as_str()))
        .collect();
    out.push_str(&terminal.join(", "));
    out.push_str(". Final statuses (nothing moves): `finalized`, `finalized_degraded`.\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn all_lists_every_event_once() {
        // Exhaustive: a new variant does not compile here until it is placed, and then it must
        // be in ALL (which the explain coverage test walks).
        fn position(e: Event) -> usize {
            match e {
                Event::Accepted
                | Event::CapacityWait
                | Event::SubmitStarted
                | Event::SubmitRetry
                | Event::JobCreated
                | Event::CompletedInline
                | Event::SubmitFailed
                | Event::SubmitAmbiguous
                | Event::StillPending
                | Event::Started
                | Event::JobSucceeded
                | Event::JobFailed
                | Event::Canceled
                | Event::DeadlineExceeded
                | Event::DeliveryRetry
                | Event::Delivered
                | Event::DeliveryFailed
                | Event::Redelivered
                | Event::FellBack
                | Event::Retried => Event::ALL.iter().position(|x| *x == e).unwrap(),
            }
        }
        let mut seen: Vec<usize> = Event::ALL.iter().map(|e| position(*e)).collect();
        seen.dedup();
        assert_eq!(seen.len(), Event::ALL.len());
        let names: std::collections::HashSet<&str> =
            Event::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(names.len(), Event::ALL.len());
    }

    #[test]
    fn rules_are_unambiguous() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in TABLE.iter().skip(i + 1) {
                if a.event == b.event {
                    for s in a.from {
                        assert!(!b.from.contains(s), "two rules for {s} on {:?}", a.event);
                    }
                }
            }
        }
    }

    #[test]
    fn final_statuses_only_leave_by_redrive() {
        assert!(apply(Finalized, Event::JobSucceeded).is_err());
        assert!(apply(Finalized, Event::Canceled).is_err());
        assert_eq!(apply(FinalizedDegraded, Event::Redelivered), Ok(Finalized));
        assert!(apply(Succeeded, Event::JobFailed).is_err());
        assert!(apply(Submitting, Event::Canceled).is_err());
    }

    #[test]
    fn every_status_is_reachable() {
        for s in Status::ALL {
            let reached = TABLE.iter().any(|r| match r.to {
                To::Status(t) => t == s,
                To::Same => r.from.contains(&s),
            });
            assert!(reached, "{s} is unreachable");
        }
    }

    #[test]
    fn docs_match_the_table() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/transitions.md");
        let rendered = render_markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &rendered).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed, rendered,
            "docs/transitions.md drifted from the table; run UPDATE_DOCS=1 cargo test -p executor-lifecycle"
        );
    }
}
