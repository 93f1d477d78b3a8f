//! The sans-IO MySQL wire codec. Nothing in here touches a socket or a clock:
//! every function takes bytes and returns values or ranges into them, so the
//! whole module can be fuzzed and benchmarked alone.

pub mod auth;
