//! The `executor` command-line tool's library: its commands, one module each
//! ([`commands`]), a small HTTP client for the API ([`client`]), fixture replay and
//! recording ([`replay`]), the demo ([`demo`]), and, re-exported from `executor-system`, the
//! whole system assembled in one process ([`local`]). Integration tests use
//! [`local::LocalSystem`] exactly as `executor dev` does.

pub mod aws_dev;
pub mod bench;
pub mod client;
pub mod commands;
pub mod conformance;
pub mod demo;
pub mod import;
pub mod infer;
pub mod keys;
pub mod render;
pub mod replay;
pub mod reruns;
pub use executor_system::{config, local, metrics, web};
