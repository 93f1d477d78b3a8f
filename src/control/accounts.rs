//! Reads the backend's own accounts and keeps the [`UserDirectory`] fresh.
//!
//! With `[backend_users]` the proxy accepts exactly the mysql_native_password
//! accounts the backend accepts, including accounts created a moment ago:
//!
//! ```text
//!  main ── initial_directory() ──> ArcSwap<UserDirectory> <── load() ── reactors
//!                                          ^                              │
//!                                          │ rcu() + Waker::wake()       │ try_send(RefreshRequest)
//!                                          │                              v
//!                                  "dbrouter-accounts" <──── bounded crossbeam channel
//!                                  read_accounts() every refresh_interval,
//!                                  and on request, at most once per min_refresh_interval
//! ```
//!
//! Reading uses the admin account over an ordinary client connection (the
//! `mysql` crate, blocking, with timeouts): this thread may block, the
//! reactors never wait for it except through the snapshot's generation.
//!
//! Only what the proxy can check itself is loaded: rows whose plugin is
//! `mysql_native_password` with a valid hash. Everything else the server
//! knows about an account (locked, password expired, connection limits, TLS
//! requirements) the backend still enforces, because the proxy logs in to it
//! as the same user.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use log::{debug, info, warn};
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, Row, Value};

use crate::config::{BackendUsersConfig, Config};
use crate::control::users::{BackendAccount, UserDirectory};
use crate::protocol::auth::PasswordHash;

/// Connecting, logging in and each read or write of the admin connection must
/// finish within this time, so that a dead or hung backend delays a refresh by
/// seconds, never more.
pub const ACCOUNTS_TIMEOUT: Duration = Duration::from_secs(3);

/// `mysql.user` is a table on MySQL and a view over `mysql.global_priv` on
/// MariaDB 10.4 and later; these four columns exist in both.
pub const ACCOUNTS_QUERY: &str = "SELECT User, Host, plugin, authentication_string FROM mysql.user";

/// The only plugin whose accounts the proxy can check.
const NATIVE_PASSWORD_PLUGIN: &str = "mysql_native_password";

/// Why the backend's accounts could not be read.
#[derive(Debug)]
pub enum AccountsError {
    /// Connecting or logging in with the admin account failed.
    Connect {
        backend: SocketAddr,
        error: mysql::Error,
    },
    /// The admin account logged in but could not read `mysql.user`.
    Query {
        backend: SocketAddr,
        error: mysql::Error,
    },
}

impl fmt::Display for AccountsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountsError::Connect { backend, error } => write!(
                f,
                "cannot log in to {backend} with the backend_users admin account: {error}"
            ),
            AccountsError::Query { backend, error } => write!(
                f,
                "cannot read mysql.user on {backend} (the admin account needs SELECT on it): {error}"
            ),
        }
    }
}

impl std::error::Error for AccountsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AccountsError::Connect { error, .. } | AccountsError::Query { error, .. } => {
                Some(error)
            }
        }
    }
}

/// Reads the backend's mysql_native_password accounts with the admin account.
///
/// Rows with another plugin (`unix_socket`, `ed25519`, roles, which have
/// none) or with a hash that is not `""` or `*` + 40 hex digits are left out
/// with a debug log line. Every network step is bounded by
/// [`ACCOUNTS_TIMEOUT`].
pub fn read_accounts(
    backend: SocketAddr,
    admin_user: &str,
    admin_password: &str,
) -> Result<Vec<BackendAccount>, AccountsError> {
    let opts = OptsBuilder::new()
        .ip_or_hostname(Some(backend.ip().to_string()))
        .tcp_port(backend.port())
        .user(Some(admin_user))
        .pass(Some(admin_password))
        // The crate would otherwise switch to the server's unix socket when
        // the address is a loopback one: keep to the address we were given.
        .prefer_socket(false)
        .tcp_connect_timeout(Some(ACCOUNTS_TIMEOUT))
        .read_timeout(Some(ACCOUNTS_TIMEOUT))
        .write_timeout(Some(ACCOUNTS_TIMEOUT));
    let mut conn = Conn::new(opts).map_err(|error| AccountsError::Connect { backend, error })?;
    let rows: Vec<Row> = conn
        .query(ACCOUNTS_QUERY)
        .map_err(|error| AccountsError::Query { backend, error })?;
    Ok(rows.iter().filter_map(account_from_row).collect())
}

/// One `mysql.user` row as a [`BackendAccount`], if the proxy can use it.
fn account_from_row(row: &Row) -> Option<BackendAccount> {
    let (Some(user), Some(host)) = (text(row, 0), text(row, 1)) else {
        debug!("skipping a mysql.user row without a readable User and Host");
        return None;
    };
    let plugin = text(row, 2).unwrap_or_default();
    if !plugin.eq_ignore_ascii_case(NATIVE_PASSWORD_PLUGIN) {
        debug!(
            "skipping account {user:?}@{host:?}: plugin {plugin:?} is not {NATIVE_PASSWORD_PLUGIN}"
        );
        return None;
    }
    let stored = text(row, 3).unwrap_or_default();
    let Some(hash) = PasswordHash::parse(&stored) else {
        debug!("skipping account {user:?}@{host:?}: its authentication_string is not a native password hash");
        return None;
    };
    Some(BackendAccount { user, host, hash })
}

/// A text column; `None` for NULL or bytes that are not UTF-8 (which
/// `mysql.user`'s utf8 columns never hold).
fn text(row: &Row, index: usize) -> Option<String> {
    match row.as_ref(index)? {
        Value::Bytes(bytes) => String::from_utf8(bytes.clone()).ok(),
        _ => None,
    }
}

/// The first snapshot, built by `main` before the reactors start: the
/// configured users and, with `[backend_users]`, the accounts of one read.
///
/// A backend that cannot be read is not fatal: the proxy starts with the
/// configured users only (logged as a warning) and the refresher keeps trying.
pub fn initial_directory(config: &Config, backend: SocketAddr) -> UserDirectory {
    let directory = UserDirectory::from_config(config);
    let Some(users) = &config.backend_users else {
        return directory;
    };
    let started = Instant::now();
    match read_accounts(backend, &users.admin_user, &users.admin_password) {
        Ok(accounts) => {
            info!(
                "read {} native-password accounts from {backend}",
                accounts.len()
            );
            directory.with_backend_accounts(accounts).read_at(started)
        }
        Err(e) => {
            warn!("{e}; until a re-read succeeds only the configured users can log in");
            directory
        }
    }
}

/// Sent by a reactor that met an unknown user, over a bounded
/// `crossbeam_channel` with `try_send`: a full channel already means a read is
/// pending, and that read will serve this request too.
#[derive(Debug, Clone, Copy)]
pub struct RefreshRequest;

/// When to read next: the refresher's clock-free core.
///
/// Reads happen `refresh_interval` after the previous one, or, once a request
/// is pending, `min_refresh_interval` after the previous one. Requests that
/// arrive while one is pending are coalesced into it.
#[derive(Debug, Clone)]
pub struct RefreshSchedule {
    refresh_interval: Duration,
    min_refresh_interval: Duration,
    last_read: Instant,
    pending: bool,
}

impl RefreshSchedule {
    /// A schedule whose previous read started at `last_read`.
    pub fn new(
        refresh_interval: Duration,
        min_refresh_interval: Duration,
        last_read: Instant,
    ) -> RefreshSchedule {
        RefreshSchedule {
            refresh_interval,
            min_refresh_interval,
            last_read,
            pending: false,
        }
    }

    /// A reactor asked for a re-read.
    pub fn request(&mut self) {
        self.pending = true;
    }

    /// When the next read is due.
    pub fn next_read(&self) -> Instant {
        let wait = if self.pending {
            self.min_refresh_interval.min(self.refresh_interval)
        } else {
            self.refresh_interval
        };
        self.last_read + wait
    }

    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next_read()
    }

    /// A read started at `at`; it serves every request received so far.
    pub fn read_started(&mut self, at: Instant) {
        self.last_read = at;
        self.pending = false;
    }
}

/// The state of the thread "dbrouter-accounts".
pub struct AccountsRefresher {
    config: BackendUsersConfig,
    backend: SocketAddr,
    directory: Arc<ArcSwap<UserDirectory>>,
    requests: Receiver<RefreshRequest>,
    wakers: Vec<Arc<mio::Waker>>,
    schedule: RefreshSchedule,
    /// What the last successful read returned, to tell "nothing changed".
    last_accounts: Option<Vec<BackendAccount>>,
    /// Whether the last attempt failed, so a dead backend warns once.
    failing: bool,
}

/// Spawns the thread "dbrouter-accounts" that owns the refresh: it re-reads
/// every `refresh_interval`, and on request, never more often than
/// `min_refresh_interval` (requests arriving meanwhile are coalesced and
/// served by the next read, which runs as soon as the interval allows).
///
/// After every read attempt, successful, failed or unchanged, it stores a new
/// snapshot with a higher generation (with the new accounts, or the old ones
/// kept) and wakes every reactor. The snapshot's
/// [`UserDirectory::read_started`] tells which requests it answers.
///
/// The thread is the only writer of `directory` once started (it uses `rcu`
/// all the same). Between reads it sleeps until the next one is due or a
/// request or the stop comes: an idle proxy's refresher wakes once per
/// `refresh_interval`. [`RefresherHandle::stop`] stops it at once, or, when a
/// read is under way, once that read ends (within a few
/// [`ACCOUNTS_TIMEOUT`]s).
pub fn spawn_refresher(
    config: BackendUsersConfig,
    backend: SocketAddr,
    directory: Arc<ArcSwap<UserDirectory>>,
    requests: Receiver<RefreshRequest>,
    wakers: Vec<Arc<mio::Waker>>,
) -> RefresherHandle {
    let (stop_sender, stop) = crossbeam_channel::bounded(0);
    let schedule = RefreshSchedule::new(
        Duration::from_millis(config.refresh_interval_ms),
        Duration::from_millis(config.min_refresh_interval_ms),
        // main has just done the first read (initial_directory).
        Instant::now(),
    );
    let refresher = AccountsRefresher {
        config,
        backend,
        directory,
        requests,
        wakers,
        schedule,
        last_accounts: None,
        failing: false,
    };
    let thread = std::thread::Builder::new()
        .name("dbrouter-accounts".into())
        .spawn(move || refresher.run(stop))
        .expect("the OS refused to start the dbrouter-accounts thread");
    RefresherHandle {
        stop: stop_sender,
        thread,
    }
}

/// The running refresher thread, as seen from whoever stops it.
pub struct RefresherHandle {
    /// Dropped to stop the thread (nothing is ever sent on it).
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl RefresherHandle {
    /// Stops the thread and waits for it to end (see [`spawn_refresher`]).
    pub fn stop(self) {
        drop(self.stop);
        if self.thread.join().is_err() {
            warn!("dbrouter-accounts ended with a panic");
        }
    }
}

impl AccountsRefresher {
    /// `stop` is never sent on: dropping its sender stops the thread, and
    /// wakes it at once if it sleeps in `select!` (nothing polls a flag).
    fn run(mut self, stop: Receiver<()>) {
        // A local handle, so that a disconnected channel can be replaced.
        let mut requests = self.requests.clone();
        // A stop that came during a read is seen before the next read.
        while stop.try_recv() != Err(TryRecvError::Disconnected) {
            let now = Instant::now();
            if self.schedule.is_due(now) {
                self.schedule.read_started(now);
                self.refresh(now);
                continue;
            }
            let wait = self.schedule.next_read().saturating_duration_since(now);
            crossbeam_channel::select! {
                recv(requests) -> request => match request {
                    Ok(RefreshRequest) => {
                        // Everything queued now was sent before the read that
                        // will serve it starts.
                        while requests.try_recv().is_ok() {}
                        self.schedule.request();
                    }
                    // No reactor is left to ask: only the schedule and the
                    // stop can wake the thread now.
                    Err(_) => requests = crossbeam_channel::never(),
                },
                recv(stop) -> _ => break,
                default(wait) => {}
            }
        }
        debug!("dbrouter-accounts stops");
    }

    /// One read attempt started at `started`, published and announced.
    fn refresh(&mut self, started: Instant) {
        let result = read_accounts(
            self.backend,
            &self.config.admin_user,
            &self.config.admin_password,
        );
        let accounts = match result {
            Ok(accounts) => {
                if self.failing {
                    info!("the accounts of {} can be read again", self.backend);
                    self.failing = false;
                }
                if self.last_accounts.as_ref() == Some(&accounts) {
                    debug!("the accounts of {} are unchanged", self.backend);
                    None
                } else {
                    debug!(
                        "read {} native-password accounts from {}",
                        accounts.len(),
                        self.backend
                    );
                    self.last_accounts = Some(accounts.clone());
                    Some(accounts)
                }
            }
            Err(e) => {
                if self.failing {
                    debug!("{e}");
                } else {
                    warn!("{e}; the accounts read before stay in use");
                    self.failing = true;
                }
                None
            }
        };
        self.directory.rcu(|current| {
            let next = match &accounts {
                Some(accounts) => current.with_backend_accounts(accounts.clone()),
                None => current.bumped(),
            };
            Arc::new(next.read_at(started))
        });
        for waker in &self.wakers {
            if let Err(e) = waker.wake() {
                warn!("cannot wake a reactor after an accounts refresh: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn periodic_reads_follow_the_refresh_interval() {
        let t0 = Instant::now();
        let mut s = RefreshSchedule::new(30 * SECOND, SECOND, t0);
        assert!(!s.is_due(t0 + 29 * SECOND));
        assert!(s.is_due(t0 + 30 * SECOND));
        s.read_started(t0 + 30 * SECOND);
        assert_eq!(s.next_read(), t0 + 60 * SECOND);
    }

    #[test]
    fn requests_wait_for_the_min_interval_and_coalesce() {
        let t0 = Instant::now();
        let mut s = RefreshSchedule::new(30 * SECOND, SECOND, t0);
        // A request right after a read waits until the min interval is over.
        s.request();
        assert!(!s.is_due(t0 + SECOND / 2));
        s.request();
        assert!(s.is_due(t0 + SECOND));
        s.read_started(t0 + SECOND);
        // Both requests were served by that one read.
        assert_eq!(s.next_read(), t0 + 31 * SECOND);
        // A request long after the last read is served at once.
        s.request();
        assert!(s.is_due(t0 + 10 * SECOND));
    }

    #[test]
    fn min_interval_longer_than_refresh_interval_does_not_delay_requests() {
        let t0 = Instant::now();
        let mut s = RefreshSchedule::new(SECOND, 5 * SECOND, t0);
        s.request();
        assert_eq!(s.next_read(), t0 + SECOND);
    }

    #[test]
    fn errors_say_what_failed() {
        let backend: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let error = read_accounts(backend, "admin", "pw").unwrap_err();
        assert!(matches!(error, AccountsError::Connect { .. }), "{error:?}");
        let text = error.to_string();
        assert!(text.contains("127.0.0.1:1"), "{text}");
        assert!(text.contains("admin account"), "{text}");
    }
}
