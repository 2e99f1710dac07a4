//! executor-bundles
