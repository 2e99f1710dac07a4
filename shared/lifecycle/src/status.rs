//! The status set of an execution.
//!
//! Statuses only change through [`crate::transitions`]; this module just names them and says
//! which are terminal (the provider work is over) and which are final (nothing moves any more).

use serde::{Deserialize, Serialize};

/// Where an execution stands. The order of variants is the order of the lifecycle.
#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted and durable; waiting for the submit action (or for provider capacity).
    Queued,
    /// Submit intent committed: the provider call that creates the job may be in flight.
    Submitting,
    /// The provider accepted the job; we know its id.
    Submitted,
    /// The provider reports the job as running.
    Running,
    /// Terminal: the provider produced the output.
    Succeeded,
    /// Terminal: the execution failed; the error class says why.
    Failed,
    /// Terminal: canceled on request.
    Canceled,
    /// Terminal: the execution exceeded its maximum duration.
    TimedOut,
    /// Final: the outcome was delivered.
    Finalized,
    /// Final: the outcome is recorded but its delivery to the customer failed.
    FinalizedDegraded,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 10] = [
        Status::Queued,
        Status::Submitting,
        Status::Submitted,
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::Canceled,
        Status::TimedOut,
        Status::Finalized,
        Status::FinalizedDegraded,
    ];

    /// The provider work is over (an outcome exists), whether or not it was delivered yet.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            Status::Queued | Status::Submitting | Status::Submitted | Status::Running
        )
    }

    /// Nothing moves any more (except an explicit redrive of a degraded delivery).
    pub fn is_final(self) -> bool {
        matches!(self, Status::Finalized | Status::FinalizedDegraded)
    }

    /// The snake_case name used in the API, the database and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Submitting => "submitting",
            Status::Submitted => "submitted",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
            Status::TimedOut => "timed_out",
            Status::Finalized => "finalized",
            Status::FinalizedDegraded => "finalized_degraded",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
