//! The admin listener's `/metrics` against a real proxy and a real MariaDB:
//! pins counted by reason and the pinned gauge back to zero when the state
//! ends, backend connections equal to what the server sees, pool waits and
//! refusals counted, client counters, and the HTTP edges (404, 405, 400, a
//! silent client that blocks nobody, stopping with the process).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use mysql::prelude::*;
use mysql::Conn;

/// How long a gauge may take to reach a value the proxy learns of
/// asynchronously (a client's close, the server's processlist).
const SETTLE: Duration = Duration::from_secs(5);

/// One HTTP exchange over a plain socket: (status, head, body).
fn http(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, head.to_string(), body.to_string())
}

/// The samples of one scrape, by `name{labels}`.
struct Scrape(HashMap<String, f64>, String);

impl Scrape {
    fn get(&self, series: &str) -> f64 {
        *self
            .0
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in the scrape:\n{}", self.1))
    }
}

fn scrape(addr: SocketAddr) -> Scrape {
    let (status, head, body) = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: dbrouter\r\nAccept: application/openmetrics-text\r\n\r\n",
    );
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    let samples = body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect();
    Scrape(samples, body)
}

/// Scrapes until `series` reads `want` (or `SETTLE` passes); the last read.
fn settled(addr: SocketAddr, series: &str, want: f64) -> f64 {
    let mut last = f64::NAN;
    wait_for(SETTLE, || {
        last = scrape(addr).get(series);
        (last == want).then_some(())
    });
    last
}

/// The first scrape after the fixture's probe of the proxy's port (one
/// connection, opened and closed at once) was accepted and closed: the
/// client counters move only with the test's clients after it.
fn after_the_probe(admin: SocketAddr) -> Scrape {
    wait_for(SETTLE, || {
        let s = scrape(admin);
        (s.get(ACCEPTED) >= 1.0 && s.get(CLIENTS) == 0.0).then_some(s)
    })
    .expect("the fixture's probe connection was accepted and closed")
}

fn pins_started(s: &Scrape, reason: &str) -> f64 {
    s.get(&format!(
        "dbrouter_pins_started_total{{reason=\"{reason}\"}}"
    ))
}

fn pinned(reason: &str) -> String {
    format!("dbrouter_pinned_sessions{{reason=\"{reason}\"}}")
}

const BACKENDS: &str = "dbrouter_backend_connections{shard=\"0\"}";
const WAITING: &str = "dbrouter_pool_waiting_clients{shard=\"0\"}";
const EXHAUSTED: &str = "dbrouter_pool_exhausted_total{shard=\"0\"}";
const CLIENTS: &str = "dbrouter_client_connections";
const ACCEPTED: &str = "dbrouter_client_connections_accepted_total";
const COMMANDS: &str = "dbrouter_commands_total";

/// Backend connections the app user holds on the server now.
fn app_connections(root: &mut Conn) -> f64 {
    root.query_first::<f64, _>(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'",
    )
    .unwrap()
    .unwrap_or(0.0)
}

/// The proxy's backend gauge and the server's count of the app user's
/// connections, once they agree (the server drops a closed connection from
/// its processlist a moment after the proxy closed it).
fn backends_agree(admin: SocketAddr, root: &mut Conn) -> (f64, f64) {
    let mut seen = (f64::NAN, f64::NAN);
    wait_for(SETTLE, || {
        seen = (scrape(admin).get(BACKENDS), app_connections(root));
        (seen.0 == seen.1).then_some(())
    });
    seen
}

/// A proxy in transaction mode, one reactor (so the pool is one queue),
/// with an admin listener.
fn pooled_proxy(db: &MariaDb, max: usize, wait_ms: u64, max_waiting: usize) -> Dbrouter {
    let config = standard_config(db)
        .set("pool_mode", "\"transaction\"")
        .set("reactors", "1")
        .pool("max_per_shard", &max.to_string())
        .pool("wait_timeout_ms", &wait_ms.to_string())
        .pool("max_waiting", &max_waiting.to_string())
        .admin();
    Dbrouter::start(&config.build())
}

#[test]
fn pins_are_counted_by_reason_and_the_gauge_returns_to_zero() {
    let db = MariaDb::start();
    db.sql("CREATE TABLE app.t (a INT)");
    let proxy = pooled_proxy(&db, 4, 5000, 100);
    let admin = proxy.admin_addr();
    let target = proxy.target();
    let mut root = db.root_conn();

    let before = after_the_probe(admin);
    let mut a = target.conn();
    let mut b = target.conn();
    let logged_in = scrape(admin);
    assert_eq!(logged_in.get(CLIENTS), 2.0);
    assert_eq!(logged_in.get(ACCEPTED) - before.get(ACCEPTED), 2.0);
    for reason in ["temporary_table", "get_lock", "user_variable"] {
        assert_eq!(pins_started(&logged_in, reason), 0.0);
        assert_eq!(logged_in.get(&pinned(reason)), 0.0);
    }

    // Exactly one command per statement, whatever the client ran at login.
    a.query_drop("CREATE TEMPORARY TABLE tt (x INT)").unwrap();
    a.query_drop("INSERT INTO tt VALUES (1)").unwrap();
    a.query_drop("SELECT GET_LOCK('m', 0)").unwrap();
    let s = scrape(admin);
    assert_eq!(s.get(COMMANDS) - logged_in.get(COMMANDS), 3.0);
    assert_eq!(pins_started(&s, "temporary_table"), 1.0);
    assert_eq!(pins_started(&s, "get_lock"), 1.0);
    assert_eq!(s.get(&pinned("temporary_table")), 1.0);
    assert_eq!(s.get(&pinned("get_lock")), 1.0);
    // a keeps its connection: at least that one is open, and the gauge is
    // what the server sees.
    let (gauge, server) = backends_agree(admin, &mut root);
    assert_eq!(
        gauge, server,
        "backend gauge vs the server's app connections"
    );
    assert!((1.0..=4.0).contains(&gauge), "{gauge}");

    // A second session pins for its own reason; another temporary table in
    // the first is no new start.
    b.query_drop("SET @x = 1").unwrap();
    a.query_drop("CREATE TEMPORARY TABLE tt2 (x INT)").unwrap();
    let s = scrape(admin);
    assert_eq!(pins_started(&s, "user_variable"), 1.0);
    assert_eq!(pins_started(&s, "temporary_table"), 1.0);
    assert_eq!(s.get(&pinned("user_variable")), 1.0);
    // Two clients pinned, each on its own connection.
    let (gauge, server) = backends_agree(admin, &mut root);
    assert_eq!(gauge, server);
    assert!((2.0..=4.0).contains(&gauge), "{gauge}");

    // The state ends statement by statement.
    a.query_drop("DROP TEMPORARY TABLE tt, tt2").unwrap();
    assert_eq!(scrape(admin).get(&pinned("temporary_table")), 0.0);
    // RELEASE_LOCK may leave other named locks: the pin stays (the proxy
    // errs towards pinning) until RELEASE_ALL_LOCKS().
    a.query_drop("SELECT RELEASE_LOCK('m')").unwrap();
    assert_eq!(scrape(admin).get(&pinned("get_lock")), 1.0);
    a.query_drop("SELECT RELEASE_ALL_LOCKS()").unwrap();
    assert_eq!(scrape(admin).get(&pinned("get_lock")), 0.0);
    // A user variable lasts until the session ends: the disconnect ends it.
    drop(b);
    assert_eq!(settled(admin, &pinned("user_variable"), 0.0), 0.0);
    assert_eq!(settled(admin, CLIENTS, 1.0), 1.0);
    // And a reset ends what it drops.
    a.query_drop("SELECT GET_LOCK('n', 0)").unwrap();
    assert_eq!(scrape(admin).get(&pinned("get_lock")), 1.0);
    a.reset().unwrap(); // COM_RESET_CONNECTION
    assert_eq!(scrape(admin).get(&pinned("get_lock")), 0.0);
    let s = scrape(admin);
    assert_eq!(pins_started(&s, "get_lock"), 2.0);
    // Nothing pinned is left: a's connection went back to the pool, and
    // the pool's connections are all the server sees.
    for reason in ["temporary_table", "get_lock", "user_variable"] {
        assert_eq!(s.get(&pinned(reason)), 0.0, "{reason}");
    }
    let (gauge, server) = backends_agree(admin, &mut root);
    assert_eq!(gauge, server);
    drop(a);
    assert_eq!(settled(admin, CLIENTS, 0.0), 0.0);
    // Idle pooled connections stay open (until pool.idle_timeout_ms).
    let (gauge, server) = backends_agree(admin, &mut root);
    assert_eq!(gauge, server);
    assert!(gauge >= 1.0, "{gauge}");

    // The shutdown log keeps the totals.
    let mut proxy = proxy;
    proxy.sigterm();
    proxy.wait_exit(Duration::from_secs(10));
    let log = proxy.log();
    assert!(
        log.contains("temporary_table=1") && log.contains("get_lock=2"),
        "{log}"
    );
}

/// A pool of one backend connection, held in a transaction by `holder`;
/// `other` is logged in first (the client library runs statements of its
/// own at login, which would wait too). Returns (server, proxy, holder,
/// other).
fn one_connection_held(wait_ms: u64, max_waiting: usize) -> (MariaDb, Dbrouter, Conn, Conn) {
    let db = MariaDb::start();
    db.sql("CREATE TABLE app.t (a INT)");
    let proxy = pooled_proxy(&db, 1, wait_ms, max_waiting);
    let target = proxy.target();
    let other = target.conn();
    let mut holder = target.conn();
    holder.query_drop("BEGIN").unwrap();
    holder.query_drop("SELECT COUNT(*) FROM t").unwrap();
    (db, proxy, holder, other)
}

#[test]
fn pool_waits_and_refusals_are_counted() {
    let (_db, proxy, mut holder, mut other) = one_connection_held(1500, 100);
    let admin = proxy.admin_addr();
    let s = scrape(admin);
    assert_eq!(s.get(BACKENDS), 1.0, "max_per_shard = 1");
    assert_eq!(s.get(WAITING), 0.0);
    assert_eq!(s.get(EXHAUSTED), 0.0);

    // The other client waits (seen in the gauge), then is refused.
    let waiter = thread::spawn(move || {
        let err = other.query_drop("SELECT 2").unwrap_err();
        (err, other)
    });
    assert_eq!(settled(admin, WAITING, 1.0), 1.0);
    let (err, mut other) = waiter.join().unwrap();
    assert!(format!("{err}").contains("pool"), "{err}");
    let s = scrape(admin);
    assert_eq!(s.get(WAITING), 0.0);
    assert_eq!(s.get(EXHAUSTED), 1.0);

    // Waiting and then served is no refusal.
    let waiter = thread::spawn(move || other.query_first::<i64, _>("SELECT 3").unwrap());
    assert_eq!(settled(admin, WAITING, 1.0), 1.0);
    holder.query_drop("COMMIT").unwrap();
    assert_eq!(waiter.join().unwrap(), Some(3));
    let s = scrape(admin);
    assert_eq!(s.get(WAITING), 0.0);
    assert_eq!(s.get(EXHAUSTED), 1.0);
    assert_eq!(s.get(BACKENDS), 1.0);
}

#[test]
fn a_full_wait_queue_is_counted_as_exhausted() {
    // No client may wait: the refusal comes at once.
    let (_db, proxy, _holder, mut other) = one_connection_held(5000, 0);
    let admin = proxy.admin_addr();
    let started = Instant::now();
    for _ in 0..3 {
        let err = other.query_drop("SELECT 2").unwrap_err();
        assert!(format!("{err}").contains("pool"), "{err}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "refused at once"
    );
    let s = scrape(admin);
    assert_eq!(s.get(EXHAUSTED), 3.0);
    assert_eq!(s.get(WAITING), 0.0);
}

/// Session mode: each client owns its backend connection, and the gauge
/// follows them; the admin listener comes from the command line here.
#[test]
fn session_mode_backends_follow_their_clients() {
    let db = MariaDb::start();
    let proxy = Dbrouter::start_with_admin_flag(&standard_config(&db).build());
    let admin = proxy.admin_addr();
    let target = proxy.target();
    let mut root = db.root_conn();
    let mut clients: Vec<Conn> = (0..3).map(|_| target.conn()).collect();
    for c in &mut clients {
        c.query_drop("SELECT 1").unwrap();
    }
    let (gauge, server) = backends_agree(admin, &mut root);
    assert_eq!((gauge, server), (3.0, 3.0));
    clients.truncate(1);
    assert_eq!(settled(admin, BACKENDS, 1.0), 1.0);
    assert_eq!(backends_agree(admin, &mut root), (1.0, 1.0));
    assert_eq!(settled(admin, CLIENTS, 1.0), 1.0);
    // No pins in session mode.
    let s = scrape(admin);
    assert_eq!(pins_started(&s, "temporary_table"), 0.0);
}

#[test]
fn the_admin_listener_answers_only_what_it_serves() {
    let db = MariaDb::start();
    let mut proxy = Dbrouter::start(&standard_config(&db).admin().build());
    let admin = proxy.admin_addr();

    // A client that connects and says nothing holds only itself.
    let mut silent = TcpStream::connect(admin).unwrap();
    let half = TcpStream::connect(admin).unwrap();
    (&half).write_all(b"GET /metr").unwrap();
    let started = Instant::now();
    scrape(admin);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a silent client delayed a scrape"
    );

    let (status, _, body) = http(admin, b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("/metrics"), "{body}");
    let (status, head, _) = http(
        admin,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 405, "{head}");
    // A TLS ClientHello's first bytes, and a broken request line.
    let (status, _, body) = http(admin, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = http(admin, b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n");
    assert_eq!(status, 400);
    let (status, _, _) = http(admin, &[b'A'; 10_000]);
    assert_eq!(status, 431);
    // The query string is not part of the path.
    let (status, _, _) = http(admin, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200);

    // The silent client is cut off after the exchange timeout.
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    let cut = Instant::now();
    assert_eq!(
        silent.read(&mut buf).unwrap_or(0),
        0,
        "closed without an answer"
    );
    assert!(
        cut.elapsed() < Duration::from_secs(8),
        "{:?}",
        cut.elapsed()
    );

    // The proxy stops promptly with an admin connection open, and the
    // admin port closes with it.
    let hanging = TcpStream::connect(admin).unwrap();
    proxy.sigterm();
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("dbrouter exits with its admin thread");
    assert!(status.success(), "{status}");
    drop(hanging);
    assert!(TcpStream::connect_timeout(&admin, Duration::from_secs(1)).is_err());
    let log = proxy.log();
    assert!(
        log.contains(&format!("admin listening on http://{admin}/metrics")),
        "{log}"
    );
}

/// SO_REUSEPORT spreads connections by a hash, not by load (64 were seen
/// split 39/25 over two reactors); reactors hand new clients to the least
/// loaded one, so the split stays within a couple whatever the hash does.
#[test]
fn clients_are_spread_evenly_over_the_reactors() {
    let db = MariaDb::start();
    let config = standard_config(&db).set("reactors", "2").admin();
    let proxy = Dbrouter::start(&config.build());
    let admin = proxy.admin_addr();
    const CLIENTS: usize = 100;
    let target = proxy.target();
    let clients: Vec<_> = (0..CLIENTS).map(|_| target.conn()).collect();
    let s = scrape(admin);
    let per_reactor = [
        s.get("dbrouter_reactor_client_connections{reactor=\"0\"}"),
        s.get("dbrouter_reactor_client_connections{reactor=\"1\"}"),
    ];
    eprintln!("{CLIENTS} clients over 2 reactors: {per_reactor:?}");
    assert_eq!(per_reactor[0] + per_reactor[1], CLIENTS as f64);
    assert!(
        (per_reactor[0] - per_reactor[1]).abs() <= 2.0,
        "{per_reactor:?}"
    );
    // Each client works wherever it landed.
    for mut c in clients {
        let one: Option<i64> = c.query_first("SELECT 1").unwrap();
        assert_eq!(one, Some(1));
    }
    assert_eq!(settled(admin, "dbrouter_client_connections", 0.0), 0.0);
}
