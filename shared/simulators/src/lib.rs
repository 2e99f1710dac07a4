//! executor-simulators
