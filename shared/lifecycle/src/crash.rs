//! Crash points of the commit protocol, for fault injection in tests.
//!
//! Production engines have no injector. Tests install one that fails the handling of a
//! message at a named point, as a process crash would; the message is then redelivered and
//! the protocol must roll forward to exactly one outcome.

use serde::{Deserialize, Serialize};

/// A point between two steps of the commit protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashPoint {
    /// After the guard was read, before any work.
    AfterGuardRead,
    /// After the action ran (provider called), before blobs were written.
    AfterAction,
    /// After blobs were written, before the commit.
    AfterBlobs,
    /// After the commit, before any outbox effect.
    AfterCommit,
    /// After the first outbox effect, before the rest.
    AfterFirstEffect,
    /// After all effects, before the outbox was cleared.
    BeforeOutboxClear,
    /// After everything, before the message is acknowledged.
    BeforeAck,
}

impl CrashPoint {
    /// Every point, in protocol order.
    pub const ALL: [CrashPoint; 7] = [
        CrashPoint::AfterGuardRead,
        CrashPoint::AfterAction,
        CrashPoint::AfterBlobs,
        CrashPoint::AfterCommit,
        CrashPoint::AfterFirstEffect,
        CrashPoint::BeforeOutboxClear,
        CrashPoint::BeforeAck,
    ];
}

/// Decides whether to crash at a point.
pub trait CrashInjector: Send + Sync {
    /// True to fail here.
    fn should_crash(&self, point: CrashPoint, execution_id: &str) -> bool;
}
