//! The execution lifecycle: one state machine for every provider.
//!
//! An execution is accepted (version 0, `queued`), then advanced by messages through the
//! submit, poll and finalize actions until it is final. Every status change goes through the
//! transition table ([`transitions`]); every transition is committed by one conditional write
//! to the guard store and its side effects ride in an outbox that anyone may roll forward
//! ([`protocol`]). The crate talks to the world only through ports ([`ports`], [`provider`]):
//! no AWS, HTTP-framework or SQLite types here.

pub mod actions;
pub mod batch;
pub mod blobs;
pub mod budget;
pub mod config;
pub mod crash;
pub mod engine;
pub mod fallback;
pub mod files;
pub mod inline;
pub mod keys;
pub mod limits;
pub mod model;
pub mod netguard;
pub mod piles;
pub mod ports;
pub mod protocol;
pub mod provider;
pub mod status;
pub mod taxonomy;
pub mod transitions;
pub mod worker;

pub use budget::{BudgetHold, BudgetPeriod, BudgetRefusal, BudgetRule, BudgetState};
pub use config::LifecycleConfig;
pub use engine::{Accepted, CreateRequest, Engine, EngineError, Ports};
pub use inline::InlineSlots;
pub use model::*;
pub use ports::*;
pub use provider::*;
pub use status::Status;
pub use taxonomy::{ErrorClass, Failure, Fault};
pub use transitions::Event;
