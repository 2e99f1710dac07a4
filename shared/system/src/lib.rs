//! The system assembled from a backend's ports, in one place for every way it runs: the
//! engine's ports, catalog media store, webhook signer, engine and API router
//! ([`assembly`]) and the configuration file both read ([`config`]), used by the Lambda
//! functions (`executor_lambda::App`, AWS backend) and by `executor dev`; and, with the
//! `local` feature, the whole system in one process on the embedded backend ([`local`]:
//! `LocalSystem`, what `executor dev`, `executor run` and the test suites start), with its
//! development defaults ([`dev`]), Prometheus metrics ([`metrics`]) and web page ([`web`]).

pub mod assembly;
pub mod config;
#[cfg(feature = "local")]
pub mod dev;
#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "local")]
pub mod metrics;
#[cfg(feature = "local")]
pub mod web;
