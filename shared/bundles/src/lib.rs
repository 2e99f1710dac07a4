//! Bundles: models described in data, run by a small step engine, interpreted by thin
//! adapters.
//!
//! A bundle (one YAML file per model in `bundles/`) declares the model's id, provider, shape,
//! input schema, pricing, limits and the steps of each action (`submit`, `poll`, `cancel`).
//! The step engine ([`engine`]) runs those steps with templates and expressions
//! ([`template`]) over real HTTP ([`http`]). An adapter ([`adapters`]) is the code a provider
//! family can't declare, behind five hooks: classify errors, compute cost, normalize results,
//! validate callbacks, extract job ids. [`BundleDriver`] joins them into the lifecycle's
//! provider port; [`BundleCatalog`] loads and checks every bundle of a directory.

pub mod adapters;
pub mod catalog;
pub mod compose;
pub mod declared;
pub mod docs;
pub mod driver;
pub mod engine;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod media;
pub mod pricing;
pub mod resilience;
pub mod rules;
pub mod sender;
pub mod standard_webhooks;
pub mod template;

pub use catalog::{BundleCatalog, BundleError, CatalogOptions};
pub use driver::BundleDriver;
pub use format::Bundle;
pub use sender::StandardWebhookSender;
