//! The control plane: who may log in.
//!
//! Reactors never block and never take a lock on the data path, so everything
//! they need from the control plane reaches them as an immutable snapshot
//! behind an `arc_swap::ArcSwap`: a reactor `load()`s the current
//! [`UserDirectory`] once per login and checks the client's scramble against
//! it without waiting for anyone.
//!
//! The snapshot is built and replaced by control threads only:
//!
//! - at start, `main` builds the first one from the configuration's
//!   `[[user]]` entries and, with `[backend_users]`, one synchronous read of
//!   the backend's accounts ([`accounts::initial_directory`]);
//! - the thread `dbrouter-accounts` ([`accounts::spawn_refresher`]) then
//!   re-reads the backend's accounts every `refresh_interval_ms`, and sooner
//!   when a reactor met a user it did not know (it sends a
//!   [`accounts::RefreshRequest`]), never more often than
//!   `min_refresh_interval_ms`. After every attempt it stores a snapshot with
//!   a higher generation and wakes every reactor, so that sessions parked on
//!   "unknown user, re-read requested" resolve: they log in if the new
//!   snapshot knows the user and are refused otherwise.
//!
//! The control plane never touches a client socket; the only sockets here are
//! the admin connections that read `mysql.user` and the one-off connection
//! that reads the backend's greeting at start ([`greeting`]).
//!
//! Files, one concern each: [`users`] (the snapshot and the login decision),
//! [`host`] (MariaDB's `user@host` matching), [`accounts`] (reading the
//! backend's accounts and keeping the snapshot fresh), [`greeting`] (what the
//! backend announces, for the proxy to announce the same).

pub mod accounts;
pub mod greeting;
pub mod host;
pub mod users;

pub use users::{AuthOutcome, BackendLogin, UserDirectory};
