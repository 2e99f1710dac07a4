//! executor-tests
