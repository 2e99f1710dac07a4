//! executor-embedded
