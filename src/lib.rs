//! dbrouter: a thread-per-core sharding proxy for MySQL and MariaDB.
//!
//! The crate is laid out along the data path; see ARCHITECTURE.md for the
//! lifetime of a query and for which thread owns what.
//!
//! - [`protocol`]: the sans-IO MySQL wire codec (framing, handshake, auth,
//!   commands, the reply tracker, ERR/OK packets). No sockets, so it is fuzzed
//!   and benchmarked alone.
//! - [`reactor`]: the per-core mio event loops that own client sessions and
//!   backend connections.
//! - [`route`]: which shard a statement goes to: the shard-key scanner, key
//!   -> bucket -> shard, the topology snapshot. Sans-IO, like `protocol`.
//! - [`control`]: the control plane: who may log in, the backends' accounts.
//! - [`admin`]: the admin plane's HTTP listener (`/metrics`), on its own
//!   thread.
//! - [`config`]: the TOML file and the command line, validated.

pub mod admin;
pub mod config;
pub mod control;
pub mod fuzzing;
pub mod protocol;
pub mod reactor;
pub mod route;
#[cfg(test)]
mod test_rng;
