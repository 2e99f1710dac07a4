//! The `executor` command-line tool's library: the whole system assembled in one process
//! ([`local`]), a small HTTP client for the API ([`client`]), and the demo ([`demo`]).
//! Integration tests use [`local::LocalSystem`] exactly as `executor dev` does.

pub mod aws_dev;
pub mod bench;
pub mod client;
pub mod conformance;
pub use executor_lambda::config;
pub mod demo;
pub mod import;
pub mod infer;
pub mod keys;
pub mod local;
pub mod metrics;
pub mod render;
pub mod replay;
pub mod reruns;
pub mod web;
