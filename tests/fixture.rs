//! Tests of the test fixture itself: the servers it starts are real, their
//! own, reachable with the accounts it promises, and gone after drop.

mod common;

use std::time::Duration;

use common::raw::{self, RawClient, Reply};
use common::*;
use mysql::prelude::Queryable;

/// Two instances started concurrently (the template is made once) each
/// answer with their own port; dropping each leaves no process behind.
#[test]
fn two_instances_start_concurrently_and_stop_cleanly() {
    let workers: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                // Started and dropped on this thread: PR_SET_PDEATHSIG
                // follows the thread that spawned the server.
                let db = MariaDb::start();
                let port: u16 = db
                    .root_conn()
                    .query_first("SELECT @@port")
                    .unwrap()
                    .unwrap();
                assert_eq!(port, db.port());
                let dir = db.dir().to_path_buf();
                let pid = db.pid();
                assert!(pid_alive(pid));
                drop(db);
                assert!(!pid_alive(pid), "mariadbd {pid} survived drop");
                assert!(!dir.exists(), "{} survived drop", dir.display());
                port
            })
        })
        .collect();
    let ports: Vec<u16> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_ne!(ports[0], ports[1]);
}

/// The accounts the tests rely on exist with the promised rights.
#[test]
fn accounts_are_as_promised() {
    let db = MariaDb::start();
    let mut app = db.app_conn();
    let user: String = app.query_first("SELECT CURRENT_USER()").unwrap().unwrap();
    assert_eq!(user, "app@%");
    app.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .unwrap();
    app.query_drop("CREATE TEMPORARY TABLE tt (id INT)")
        .unwrap();
    // No rights outside `app`.
    let err = app.query_drop("SELECT * FROM mysql.user").unwrap_err();
    assert!(err.to_string().contains("1142"), "{err}");

    let mut admin = connect(db.port(), ADMIN_USER, ADMIN_PASSWORD, None).unwrap();
    let hash: String = admin
        .query_first("SELECT authentication_string FROM mysql.user WHERE user = 'app'")
        .unwrap()
        .unwrap();
    assert_eq!(hash, native_password_hash(APP_PASSWORD));
    // The admin account cannot write.
    assert!(admin.query_drop("CREATE DATABASE x").is_err());
}

/// The fixture's hash is the server's PASSWORD().
#[test]
fn native_password_hash_matches_the_server() {
    let db = MariaDb::start();
    for pw in ["app_password", "p\"w'\\ü", "x"] {
        let server: String = db
            .root_conn()
            .exec_first("SELECT PASSWORD(?)", (pw,))
            .unwrap()
            .unwrap();
        assert_eq!(native_password_hash(pw), server, "password {pw:?}");
    }
    assert_eq!(native_password_hash(""), "");
}

/// A server whose starting thread dies is killed (PR_SET_PDEATHSIG).
#[test]
fn server_dies_with_the_thread_that_started_it() {
    let (pid, dir) = std::thread::spawn(|| {
        let db = MariaDb::start();
        let out = (db.pid(), db.dir().to_path_buf());
        std::mem::forget(db); // no Drop: only the death signal can stop it
        out
    })
    .join()
    .unwrap();
    let gone = wait_for(Duration::from_secs(10), || (!pid_alive(pid)).then_some(()));
    // The forgotten server was never reaped by a Child: reap it here.
    // SAFETY: waitpid on our own child's pid with a null status pointer.
    unsafe {
        libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG);
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(gone.is_some(), "mariadbd {pid} outlived its thread");
}

/// kill() is a SIGKILL; restart() brings the server back on its port with
/// its data.
#[test]
fn kill_and_restart_keep_port_and_data() {
    let mut db = MariaDb::start();
    db.sql("CREATE TABLE app.k (v INT) ENGINE=InnoDB; INSERT INTO app.k VALUES (7)");
    let port = db.port();
    let old = db.pid();
    db.kill();
    assert!(!pid_alive(old));
    assert!(db.try_app_conn().is_err());
    db.restart();
    assert_eq!(db.port(), port);
    let v: i32 = db
        .app_conn()
        .query_first("SELECT v FROM k")
        .unwrap()
        .unwrap();
    assert_eq!(v, 7);
}

/// The raw client logs in and speaks the commands the crate lacks.
#[test]
fn raw_client_logs_in_and_runs_commands() {
    let db = MariaDb::start();
    let mut c = RawClient::login_to(db.port(), APP_USER, APP_PASSWORD, Some(APP_DB));
    let reply = c.query("SELECT 1, NULL, 'x'").unwrap();
    assert_eq!(reply.rows_text(), vec![vec!["1", "NULL", "x"]]);
    let stats = {
        c.seq = 0;
        c.write_packet(&[raw::COM_STATISTICS]).unwrap();
        c.read_packet().unwrap().1
    };
    assert!(String::from_utf8_lossy(&stats).starts_with("Uptime: "));
    assert!(matches!(
        c.command(&[raw::COM_PING]).unwrap(),
        Reply::Ok { .. }
    ));

    let mut bad = RawClient::connect(db.port()).unwrap();
    let err = bad.login(APP_USER, "wrong", None).unwrap_err();
    assert_eq!(err.code, 1045);
    assert_eq!(err.sqlstate, "28000");
    assert_eq!(
        err.message,
        "Access denied for user 'app'@'127.0.0.1' (using password: YES)"
    );
}

/// The CLI helper runs the real client against the server.
#[test]
fn cli_helper_runs_the_client() {
    let db = MariaDb::start();
    let (status, out, err) = mariadb_cli(
        db.port(),
        APP_USER,
        APP_PASSWORD,
        &["--batch", APP_DB],
        "SELECT 40 + 2 AS answer;\n",
    );
    assert!(status.success(), "{err}");
    assert_eq!(out, "answer\n42\n");
}

/// The config builder writes what config.rs accepts.
#[test]
fn config_builder_output_is_valid() {
    let text = ConfigBuilder::new(6033, "127.0.0.1:3306".parse().unwrap())
        .user("app", "app_password")
        .user_as("front", "pw", "app", "app_password")
        .backend_users("dbrouter_admin", "secret\"quoted")
        .set("max_allowed_packet", "4096")
        .set("reactors", "1")
        .build();
    let config =
        dbrouter::config::Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(config.proxy.max_allowed_packet, 4096);
    assert_eq!(
        config.users[0].password_hash,
        native_password_hash("app_password")
    );
    assert_eq!(config.users[1].backend_user.as_deref(), Some("app"));
    assert_eq!(
        config.backend_users.unwrap().admin_password,
        "secret\"quoted"
    );
}
