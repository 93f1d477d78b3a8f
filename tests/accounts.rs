//! The backend's own accounts, read from a real MariaDB: what is loaded, how
//! the refresher picks up accounts created a moment ago, its rate limit, and
//! how a dead or hung backend fails.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::Sender;
use mio::{Events, Poll, Token, Waker};

use common::raw::{self, RawClient};
use common::{MariaDb, ADMIN_PASSWORD, ADMIN_USER};
use dbrouter::config::{BackendUsersConfig, Config};
use dbrouter::control::accounts::{
    initial_directory, read_accounts, spawn_refresher, AccountsError, RefreshRequest,
    RefresherHandle, ACCOUNTS_TIMEOUT,
};
use dbrouter::control::users::BackendAccount;
use dbrouter::control::{AuthOutcome, BackendLogin, UserDirectory};
use dbrouter::protocol::auth::{Credential, PasswordHash, Scramble};

const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn users_config(refresh_ms: u64, min_refresh_ms: u64) -> BackendUsersConfig {
    BackendUsersConfig {
        admin_user: ADMIN_USER.into(),
        admin_password: ADMIN_PASSWORD.into(),
        refresh_interval_ms: refresh_ms,
        min_refresh_interval_ms: min_refresh_ms,
    }
}

fn single_config(backend: SocketAddr) -> Config {
    Config::single_backend(
        "127.0.0.1:0".parse().unwrap(),
        backend,
        ADMIN_USER.into(),
        ADMIN_PASSWORD.into(),
    )
    .unwrap()
}

/// Logs `user` in against a snapshot with the response a real client
/// computes (the fixture's own SHA1 code, not the proxy's).
fn authenticate(dir: &UserDirectory, user: &str, password: &str) -> AuthOutcome {
    let scramble = Scramble::generate();
    let response = raw::native_scramble(password, &scramble.0);
    dir.authenticate(user.as_bytes(), LOOPBACK, &scramble.0, &response)
}

/// Logs in to the backend the way the proxy will: with the user and the
/// credential of a [`BackendLogin`], no password in sight.
fn backend_login_works(db: &MariaDb, login: &BackendLogin) -> Result<(), String> {
    let mut client = RawClient::connect(db.port()).map_err(|e| e.to_string())?;
    let auth = login
        .credential
        .scramble_response(&client.greeting().scramble);
    let user = String::from_utf8(login.user.clone()).unwrap();
    let response = raw::handshake_response(
        raw::DEFAULT_CAPS,
        &user,
        &auth,
        None,
        "mysql_native_password",
    );
    client.write_packet(&response).map_err(|e| e.to_string())?;
    let (_, reply) = client.read_packet().map_err(|e| e.to_string())?;
    match reply.first() {
        Some(0x00) => Ok(()),
        _ => Err(format!("{:?}", raw::ErrPacket::parse(&reply))),
    }
}

/// A refresher on its own thread with the reactor side of it: the request
/// channel, one waker and the handle that stops it.
struct Refresher {
    directory: Arc<ArcSwap<UserDirectory>>,
    requests: Sender<RefreshRequest>,
    poll: Poll,
    events: Events,
    handle: Option<RefresherHandle>,
}

impl Refresher {
    fn start(config: BackendUsersConfig, backend: SocketAddr, first: UserDirectory) -> Refresher {
        let directory = Arc::new(ArcSwap::from_pointee(first));
        let (requests, receiver) = crossbeam_channel::bounded(1);
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        let handle = spawn_refresher(
            config,
            backend,
            Arc::clone(&directory),
            receiver,
            vec![waker],
        );
        Refresher {
            directory,
            requests,
            poll,
            events: Events::with_capacity(4),
            handle: Some(handle),
        }
    }

    fn current(&self) -> Arc<UserDirectory> {
        self.directory.load_full()
    }

    /// What a reactor does on an unknown user.
    fn request(&self) {
        // A full channel means a read is pending already: fine.
        let _ = self.requests.try_send(RefreshRequest);
    }

    /// Waits, as a reactor does, for wake-ups until a snapshot with a
    /// generation above `generation` is published.
    fn wait_past(&mut self, generation: u64, timeout: Duration) -> Arc<UserDirectory> {
        let deadline = Instant::now() + timeout;
        loop {
            let current = self.current();
            if current.generation() > generation {
                return current;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no snapshot past generation {generation} within {timeout:?}"
            );
            self.poll.poll(&mut self.events, Some(left)).unwrap();
        }
    }

    /// Stops the thread; returns how long that took.
    fn stop(&mut self) -> Duration {
        let started = Instant::now();
        self.handle.take().unwrap().stop();
        started.elapsed()
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        if self.handle.is_some() {
            self.stop();
        }
    }
}

fn find<'a>(accounts: &'a [BackendAccount], user: &str, host: &str) -> Option<&'a BackendAccount> {
    accounts.iter().find(|a| a.user == user && a.host == host)
}

#[test]
fn read_accounts_sees_a_user_created_a_moment_before() {
    let db = MariaDb::start();
    db.sql(
        "CREATE USER 'fresh'@'%' IDENTIFIED BY 'fresh-pw';\n\
         CREATE USER 'fresh'@'10.9.%' IDENTIFIED BY 'other-pw';\n\
         CREATE USER 'nopw'@'127.0.0.1';\n\
         CREATE USER 'sock'@'localhost' IDENTIFIED VIA unix_socket;\n\
         CREATE ROLE 'a_role';\n",
    );
    let accounts = read_accounts(db.addr(), ADMIN_USER, ADMIN_PASSWORD).unwrap();

    let fresh = find(&accounts, "fresh", "%").expect("fresh@% is read");
    assert_eq!(fresh.hash, PasswordHash::from_password("fresh-pw"));
    let other = find(&accounts, "fresh", "10.9.%").expect("fresh@10.9.% is read");
    assert_eq!(other.hash, PasswordHash::from_password("other-pw"));
    assert_eq!(
        find(&accounts, "nopw", "127.0.0.1").unwrap().hash,
        PasswordHash::Empty
    );
    assert!(find(&accounts, common::APP_USER, "%").is_some());
    // Another plugin, a role, and root (no plugin named, see accounts.rs)
    // are not loaded.
    for skipped in ["sock", "a_role", "root"] {
        assert!(
            accounts.iter().all(|a| a.user != skipped),
            "{skipped} should be skipped: {accounts:?}"
        );
    }

    // The snapshot accepts what the server accepts, and its credential logs
    // in to the server as that user.
    let dir = UserDirectory::from_config(&single_config(db.addr())).with_backend_accounts(accounts);
    match authenticate(&dir, "fresh", "fresh-pw") {
        AuthOutcome::Accepted(login) => {
            assert_eq!(login.user, b"fresh");
            assert_eq!(login.credential, Credential::from_password("fresh-pw"));
            backend_login_works(&db, &login).unwrap();
        }
        other => panic!("fresh: {other:?}"),
    }
    match authenticate(&dir, "nopw", "") {
        AuthOutcome::Accepted(login) => backend_login_works(&db, &login).unwrap(),
        other => panic!("nopw: {other:?}"),
    }
    assert!(matches!(
        authenticate(&dir, "fresh", "other-pw"),
        AuthOutcome::WrongPassword
    ));
    assert!(matches!(
        authenticate(&dir, "sock", ""),
        AuthOutcome::UnknownUser
    ));
}

#[test]
fn initial_directory_reads_once_and_survives_a_dead_backend() {
    let db = MariaDb::start();
    let dir = initial_directory(&single_config(db.addr()), db.addr());
    assert_eq!(dir.generation(), 1);
    assert!(dir.read_started().is_some());
    assert!(matches!(
        authenticate(&dir, common::APP_USER, common::APP_PASSWORD),
        AuthOutcome::Accepted(_)
    ));

    let dead = closed_port();
    let dir = initial_directory(&single_config(dead), dead);
    assert_eq!(dir.generation(), 0);
    assert!(matches!(
        authenticate(&dir, common::APP_USER, common::APP_PASSWORD),
        AuthOutcome::UnknownUser
    ));
}

#[test]
fn refresher_picks_up_a_new_user_on_request() {
    let db = MariaDb::start();
    let first = initial_directory(&single_config(db.addr()), db.addr());
    // Periodic reads far away: only the request can explain a new read.
    let mut refresher = Refresher::start(users_config(600_000, 100), db.addr(), first);

    db.sql("CREATE USER 'late'@'%' IDENTIFIED BY 'late-pw'");
    let before = refresher.current();
    assert!(matches!(
        authenticate(&before, "late", "late-pw"),
        AuthOutcome::UnknownUser
    ));
    let sent = Instant::now();
    refresher.request();
    let after = refresher.wait_past(before.generation(), Duration::from_secs(10));
    assert_eq!(after.generation(), before.generation() + 1);
    assert!(
        after.read_started() >= Some(sent),
        "answered by a read that started after the request"
    );
    match authenticate(&after, "late", "late-pw") {
        AuthOutcome::Accepted(login) => backend_login_works(&db, &login).unwrap(),
        other => panic!("late after the re-read: {other:?}"),
    }

    // Nothing changed: a request still publishes a new generation, so that
    // waiting sessions resolve (and are refused).
    let unchanged = refresher.current();
    refresher.request();
    let next = refresher.wait_past(unchanged.generation(), Duration::from_secs(10));
    assert!(matches!(
        authenticate(&next, "ghost", "x"),
        AuthOutcome::UnknownUser
    ));
    assert!(matches!(
        authenticate(&next, "late", "late-pw"),
        AuthOutcome::Accepted(_)
    ));

    let took = refresher.stop();
    assert!(took < Duration::from_millis(500), "stop took {took:?}");
}

#[test]
fn requests_within_the_min_interval_give_one_read() {
    const MIN: Duration = Duration::from_millis(1500);
    let db = MariaDb::start();
    let first = initial_directory(&single_config(db.addr()), db.addr());
    let spawned = Instant::now();
    let mut refresher = Refresher::start(
        users_config(600_000, MIN.as_millis() as u64),
        db.addr(),
        first,
    );
    let g0 = refresher.current().generation();

    // The initial read counts: a request right away waits out the interval.
    refresher.request();
    let a = refresher.wait_past(g0, Duration::from_secs(10));
    assert_eq!(a.generation(), g0 + 1);
    let waited = spawned.elapsed();
    assert!(waited >= MIN, "first request served after {waited:?}");

    // Two requests right after a read: one more read, not before MIN.
    refresher.request();
    refresher.request();
    let b = refresher.wait_past(a.generation(), Duration::from_secs(10));
    assert_eq!(b.generation(), g0 + 2);
    let gap = b.read_started().unwrap() - a.read_started().unwrap();
    assert!(gap >= MIN, "reads {gap:?} apart");

    // And no third read for them.
    std::thread::sleep(MIN * 2);
    assert_eq!(refresher.current().generation(), g0 + 2);
}

#[test]
fn refresher_rereads_periodically_and_bumps_on_a_dead_backend() {
    let db = MariaDb::start();
    let first = initial_directory(&single_config(db.addr()), db.addr());
    let mut refresher = Refresher::start(users_config(200, 100), db.addr(), first);
    let g0 = refresher.current().generation();
    let mut seen = refresher.wait_past(g0, Duration::from_secs(10));
    seen = refresher.wait_past(seen.generation(), Duration::from_secs(10));
    assert!(
        seen.generation() >= g0 + 2,
        "periodic reads without requests"
    );
    drop(refresher);

    // A dead backend: each failed attempt still publishes a generation and
    // keeps the accounts read before.
    let dead = closed_port();
    let mut refresher = Refresher::start(users_config(600_000, 100), dead, seen.bumped());
    let before = refresher.current().generation();
    refresher.request();
    let after = refresher.wait_past(before, ACCOUNTS_TIMEOUT + Duration::from_secs(2));
    assert!(matches!(
        authenticate(&after, common::APP_USER, common::APP_PASSWORD),
        AuthOutcome::Accepted(_)
    ));
}

#[test]
fn a_dead_backend_gives_a_clean_error_within_the_timeout() {
    // Nobody listens.
    let dead = closed_port();
    let started = Instant::now();
    let error = read_accounts(dead, ADMIN_USER, ADMIN_PASSWORD).unwrap_err();
    assert!(matches!(error, AccountsError::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains(&dead.to_string()), "{error}");
    assert!(started.elapsed() < ACCOUNTS_TIMEOUT);

    // Accepts the connection (the kernel does) and never says a word.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hung.local_addr().unwrap();
    let started = Instant::now();
    let error = read_accounts(addr, ADMIN_USER, ADMIN_PASSWORD).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, AccountsError::Connect { .. }), "{error:?}");
    assert!(
        took < ACCOUNTS_TIMEOUT + Duration::from_secs(1),
        "took {took:?}: {error}"
    );

    // A live server with a wrong admin password: refused, said clearly.
    let db = MariaDb::start();
    let error = read_accounts(db.addr(), ADMIN_USER, "wrong").unwrap_err();
    assert!(error.to_string().contains("1045"), "{error}");
    // An admin account that may not read mysql.user.
    let error = read_accounts(db.addr(), common::APP_USER, common::APP_PASSWORD).unwrap_err();
    assert!(matches!(error, AccountsError::Query { .. }), "{error:?}");
}

/// An address nobody listens on (bound, then released).
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// The greeting read at start (control::greeting) from a real server.
#[test]
fn the_backends_greeting_is_read_at_start() {
    use dbrouter::control::greeting::read_server_greeting;
    use dbrouter::protocol::consts::caps::CLIENT_PROTOCOL_41;

    let db = MariaDb::start();
    let facts = read_server_greeting(db.addr(), Duration::from_secs(5)).unwrap();
    let version: String = db.query("SELECT VERSION()").pop().unwrap();
    assert_eq!(facts.version, format!("5.5.5-{version}"));
    assert_ne!(facts.capabilities & CLIENT_PROTOCOL_41, 0);
    // The same facts a client sees when it connects.
    let client = RawClient::connect(db.port()).unwrap();
    assert_eq!(facts.capabilities, client.greeting().capabilities);
    assert_eq!(facts.charset, client.greeting().charset);

    assert_eq!(
        read_server_greeting(closed_port(), Duration::from_secs(1)),
        None
    );
}
