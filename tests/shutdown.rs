//! Graceful shutdown: on SIGTERM the proxy stops accepting, lets running
//! statements finish and deliver their results, closes every session, and
//! exits within its shutdown timeout.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::raw::RawClient;
use common::*;
use mysql::prelude::Queryable;

/// SIGTERM while `SELECT SLEEP(2)` runs: its result arrives, then the
/// connection is closed; an idle client is closed; new clients are refused;
/// the process exits cleanly soon after the statement ends.
#[test]
fn sigterm_lets_the_running_statement_finish() {
    let db = MariaDb::start();
    let mut proxy = proxy_for(&db);
    let port = proxy.port();
    let mut idle = RawClient::login_to(port, APP_USER, APP_PASSWORD, Some(APP_DB));
    let (tx, rx) = mpsc::channel();
    let busy = std::thread::spawn(move || {
        let mut c = connect(port, APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
        tx.send(()).unwrap();
        let started = Instant::now();
        let result: mysql::Result<Option<i32>> = c.query_first("SELECT SLEEP(2) + 7");
        let finished = Instant::now();
        let after = c.query_drop("SELECT 1");
        (result, started, finished, after)
    });
    rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    proxy.sigterm();
    std::thread::sleep(Duration::from_millis(200));

    // New clients are refused once the signal arrived.
    let refused = connect(port, APP_USER, APP_PASSWORD, Some(APP_DB));
    assert!(refused.is_err(), "a new client logged in after SIGTERM");

    // The idle client is closed (without waiting for the busy one).
    let (_, closed) = idle.read_until_closed(Duration::from_secs(2));
    assert!(closed, "idle client still open after SIGTERM");

    let (result, started, finished, after) = busy.join().unwrap();
    assert_eq!(
        result.unwrap_or_else(|e| panic!("the running statement failed: {e}")),
        Some(7)
    );
    assert!(finished - started >= Duration::from_millis(1_900));
    assert!(after.is_err(), "the session stayed open after shutdown");

    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("dbrouter still running 5 s after the last statement"));
    assert!(status.success(), "dbrouter exited with {status}");
    // The backend saw its sessions closed.
    let open: Vec<(u64, String)> =
        db.query("SELECT id, user FROM information_schema.processlist WHERE user = 'app'");
    let gone = wait_for(Duration::from_secs(5), || {
        let open: Vec<u64> =
            db.query("SELECT id FROM information_schema.processlist WHERE user = 'app'");
        open.is_empty().then_some(())
    });
    assert!(gone.is_some(), "backend sessions left open: {open:?}");
}

/// A statement longer than the shutdown timeout does not hold the exit: the
/// proxy exits after the timeout and the client gets an error, not a hang.
#[test]
fn shutdown_timeout_bounds_the_wait() {
    let db = MariaDb::start();
    let mut proxy = Dbrouter::start(
        &standard_config(&db)
            .set("shutdown_timeout_ms", "1000")
            .build(),
    );
    let port = proxy.port();
    let (tx, rx) = mpsc::channel();
    let busy = std::thread::spawn(move || {
        let mut c = connect(port, APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
        tx.send(()).unwrap();
        c.query_drop("SELECT SLEEP(20)")
    });
    rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    proxy.sigterm();
    let status = proxy.wait_exit(Duration::from_secs(5));
    let took = signalled.elapsed();
    assert!(status.is_some(), "dbrouter did not exit within 5 s");
    assert!(took >= Duration::from_millis(900), "exited after {took:?}");
    let result = busy.join().unwrap();
    assert!(result.is_err(), "the cut statement reported success");
    assert!(signalled.elapsed() < Duration::from_secs(6));
}
