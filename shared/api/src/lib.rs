//! executor-api
