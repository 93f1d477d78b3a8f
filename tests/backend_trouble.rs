//! A backend that dies under the proxy: clients get prompt, clean errors
//! naming the shard, the proxy survives, and it serves again once the
//! backend is back.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use mysql::prelude::Queryable;

fn server_error(r: mysql::Result<()>) -> mysql::MySqlError {
    match r {
        Err(mysql::Error::MySqlError(e)) => e,
        other => panic!("expected an ERR packet from the proxy, got {other:?}"),
    }
}

/// SIGKILL the backend while one client runs a long statement and another
/// sits idle: both get a 2013 error naming the shard within 5 s; a new
/// client gets a 2003 error within the connect timeout; the proxy lives on
/// and serves again once a backend listens on the same port.
#[test]
fn killed_backend_gives_prompt_errors_and_proxy_recovers() {
    let mut db = MariaDb::start();
    let config = standard_config(&db)
        .set("connect_timeout_ms", "2000")
        .build();
    let mut proxy = Dbrouter::start(&config);
    let port = proxy.port();

    let mut idle = connect(port, APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
    let one: i32 = idle.query_first("SELECT 1").unwrap().unwrap();
    assert_eq!(one, 1);

    let (tx, rx) = mpsc::channel();
    let busy = std::thread::spawn(move || {
        let mut c = connect(port, APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
        tx.send(()).unwrap();
        let r = c.query_drop("SELECT SLEEP(30)");
        (r, Instant::now())
    });
    rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(300)); // the SLEEP is running
    let killed_at = Instant::now();
    db.kill();

    let (busy_result, busy_done) = busy.join().unwrap();
    let waited = busy_done - killed_at;
    assert!(
        waited < Duration::from_secs(5),
        "busy client waited {waited:?}"
    );
    let e = server_error(busy_result);
    assert_eq!(e.code, 2013, "{e:?}");
    assert!(e.message.contains("shard 0"), "{e:?}");

    let started = Instant::now();
    let e = server_error(idle.query_drop("SELECT 1"));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(e.code, 2013, "{e:?}");
    assert!(e.message.contains("shard 0"), "{e:?}");
    proxy.assert_alive();

    // A new client while the backend is down.
    let started = Instant::now();
    let result = connect(port, APP_USER, APP_PASSWORD, Some(APP_DB)).and_then(|mut c| {
        // A proxy that connects to the backend lazily reports it here.
        c.query_drop("SELECT 1")
    });
    let took = started.elapsed();
    let e = server_error(result);
    assert_eq!(e.code, 2003, "{e:?}");
    assert!(e.message.contains("shard 0"), "{e:?}");
    assert!(
        took < Duration::from_millis(2_000 + 2_000),
        "the refusal took {took:?}, connect timeout is 2 s"
    );
    proxy.assert_alive();

    // The backend comes back on the same port.
    db.restart();
    let back = wait_for(Duration::from_secs(15), || {
        let mut c = connect(port, APP_USER, APP_PASSWORD, Some(APP_DB)).ok()?;
        c.query_first::<i32, _>("SELECT 41 + 1").ok().flatten()
    });
    assert_eq!(
        back,
        Some(42),
        "proxy did not serve again:\n{}",
        proxy.log()
    );
    proxy.assert_alive();
}

/// The backend stops between statements of a transaction: the client
/// learns it at its next statement, never sees a silent success.
#[test]
fn backend_gone_between_statements_of_a_transaction() {
    let mut db = MariaDb::start();
    db.sql("CREATE TABLE app.t (id INT PRIMARY KEY) ENGINE=InnoDB");
    let mut proxy = proxy_for(&db);
    let mut c = connect(proxy.port(), APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
    c.query_drop("BEGIN; INSERT INTO t VALUES (1)").unwrap();
    db.kill();
    let e = server_error(c.query_drop("COMMIT"));
    assert_eq!(e.code, 2013, "{e:?}");
    proxy.assert_alive();
    db.restart();
    let rows: Vec<i32> = db.app_conn().query("SELECT id FROM t").unwrap();
    assert!(rows.is_empty(), "uncommitted row survived: {rows:?}");
}
