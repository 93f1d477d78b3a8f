//! Per-core event loops.
