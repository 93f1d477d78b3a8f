//! Logging in through dbrouter: refusals worded exactly as the server words
//! them, the backends' own accounts (new ones too), configured users, and a
//! backend that refuses the proxy's login.

mod common;

use std::time::{Duration, Instant};

use common::raw::{ErrPacket, RawClient};
use common::*;
use mysql::prelude::Queryable;

/// The refusals a client can get at login, read with the raw client.
fn refusals(port: u16) -> Vec<ErrPacket> {
    let attempts = [
        (APP_USER, "wrong_password", Some(APP_DB)),
        (APP_USER, "", Some(APP_DB)),
        ("nobody", "whatever", None),
        ("far", "far_password", None),
        // Right password, database without rights.
        (APP_USER, APP_PASSWORD, Some("other_db")),
    ];
    attempts
        .iter()
        .map(|(user, password, db)| {
            let mut c = RawClient::connect(port).unwrap();
            let err = c
                .login(user, password, *db)
                .expect_err("login must be refused");
            // The server closes the connection after refusing a login.
            let (_, closed) = c.read_until_closed(Duration::from_secs(5));
            assert!(closed, "port {port}: connection left open after {err}");
            err
        })
        .collect()
}

fn expected_refusals() -> Vec<ErrPacket> {
    let denied = |user: &str, yes: &str| ErrPacket {
        code: 1045,
        sqlstate: "28000".into(),
        message: format!("Access denied for user '{user}'@'127.0.0.1' (using password: {yes})"),
    };
    vec![
        denied("app", "YES"),
        denied("app", "NO"),
        denied("nobody", "YES"),
        denied("far", "YES"),
        ErrPacket {
            code: 1044,
            sqlstate: "42000".into(),
            message: "Access denied for user 'app'@'%' to database 'other_db'".into(),
        },
    ]
}

fn prepare_accounts(db: &MariaDb) {
    db.sql(
        "CREATE DATABASE other_db;
         CREATE USER 'far'@'10.0.0.%' IDENTIFIED BY 'far_password';
         GRANT SELECT ON app.* TO 'far'@'10.0.0.%'",
    );
}

/// Wrong password, no password, unknown user, a user allowed only from
/// another host, a forbidden database: the proxy in command-line mode
/// (backend accounts) refuses exactly as the server does.
#[test]
fn refusals_are_worded_as_the_server_words_them_cli_mode() {
    let db = MariaDb::start();
    prepare_accounts(&db);
    let direct = refusals(db.port());
    assert_eq!(direct, expected_refusals());
    let proxy = Dbrouter::start_single(&db);
    assert_eq!(refusals(proxy.port()), direct);
}

/// The same with a configuration file that names `app` itself and also
/// accepts the backend's accounts.
#[test]
fn refusals_are_worded_as_the_server_words_them_config_mode() {
    let db = MariaDb::start();
    prepare_accounts(&db);
    let direct = refusals(db.port());
    let proxy = Dbrouter::start(&standard_config(&db).user(APP_USER, APP_PASSWORD).build());
    assert_eq!(refusals(proxy.port()), direct);
    // And the mysql crate sees the same error.
    let err = connect(proxy.port(), APP_USER, "wrong_password", None).unwrap_err();
    let direct_err = connect(db.port(), APP_USER, "wrong_password", None).unwrap_err();
    assert_eq!(err.to_string(), direct_err.to_string());
}

/// A user created on the backend a moment ago logs in through
/// `dbrouter --listen --backend` at the first attempt; a dropped one no
/// longer does.
#[test]
fn new_backend_user_logs_in_through_cli_mode() {
    let db = MariaDb::start();
    let proxy = Dbrouter::start_single(&db);
    // The proxy may re-read accounts at most once a second
    // (users.min_refresh_interval_ms); let that pass since its start.
    std::thread::sleep(Duration::from_millis(1_200));
    db.sql(
        "CREATE USER 'fresh'@'%' IDENTIFIED BY 'fresh pässword \"q\"';
         GRANT SELECT ON app.* TO 'fresh'@'%'",
    );
    let started = Instant::now();
    let mut c = connect(proxy.port(), "fresh", "fresh pässword \"q\"", Some(APP_DB))
        .unwrap_or_else(|e| panic!("new user refused by the proxy: {e}\n{}", proxy.log()));
    let user: String = c.query_first("SELECT CURRENT_USER()").unwrap().unwrap();
    assert_eq!(user, "fresh@%");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(c);

    // An account without a password.
    db.sql("CREATE USER 'nopw'@'%'; GRANT SELECT ON app.* TO 'nopw'@'%'");
    std::thread::sleep(Duration::from_millis(1_200));
    let mut c = connect(proxy.port(), "nopw", "", None).unwrap();
    let user: String = c.query_first("SELECT CURRENT_USER()").unwrap().unwrap();
    assert_eq!(user, "nopw@%");

    // A dropped account: the proxy may still know it until its next read
    // of the accounts, so the refusal may come from the backend; then it
    // names the shard (see backend_refusing_the_login_...), but keeps the
    // server's code, SQLSTATE and words.
    db.sql("DROP USER 'fresh'@'%'");
    std::thread::sleep(Duration::from_millis(1_200));
    let refusal = |port: u16| match connect(port, "fresh", "fresh pässword \"q\"", None) {
        Err(mysql::Error::MySqlError(e)) => e,
        other => panic!("port {port}: expected ERR 1045, got {other:?}"),
    };
    let direct = refusal(db.port());
    let via = refusal(proxy.port());
    assert_eq!((via.code, &via.state), (direct.code, &direct.state));
    assert!(
        via.message.contains(&direct.message),
        "{via:?} lacks the server's words {:?}",
        direct.message
    );
}

/// Users named in the configuration log in, as themselves or mapped onto
/// another backend account.
#[test]
fn configured_users_log_in() {
    let db = MariaDb::start();
    let config = ConfigBuilder::new(free_port(), db.addr())
        .user(APP_USER, APP_PASSWORD)
        .user_as("front", "front password", APP_USER, APP_PASSWORD)
        .build();
    let proxy = Dbrouter::start(&config);
    let mut c = connect(proxy.port(), APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
    let user: String = c.query_first("SELECT CURRENT_USER()").unwrap().unwrap();
    assert_eq!(user, "app@%");
    let mut c = connect(proxy.port(), "front", "front password", Some(APP_DB)).unwrap();
    let user: String = c.query_first("SELECT CURRENT_USER()").unwrap().unwrap();
    assert_eq!(user, "app@%");
    // A configured user's wrong password is refused in the server's words.
    match connect(proxy.port(), "front", "nope", None) {
        Err(mysql::Error::MySqlError(e)) => assert_eq!(
            (e.code, e.state.as_str(), e.message.as_str()),
            (
                1045,
                "28000",
                "Access denied for user 'front'@'127.0.0.1' (using password: YES)"
            )
        ),
        other => panic!("expected ERR 1045, got {other:?}"),
    }
}

/// The proxy accepts the client, but the backend refuses the proxy's login
/// (the account exists only in the proxy's configuration, or its backend
/// password is wrong): the client gets an ERR that names the shard and the
/// backend's reason, promptly, and the proxy keeps serving others.
#[test]
fn backend_refusing_the_login_is_reported_with_shard_and_cause() {
    let db = MariaDb::start();
    let config = ConfigBuilder::new(free_port(), db.addr())
        .user(APP_USER, APP_PASSWORD)
        .user("ghost", "ghost_password")
        .user_as("mapped", "mapped_password", APP_USER, "not_the_password")
        .build();
    let mut proxy = Dbrouter::start(&config);
    for (user, password, backend_user) in [
        ("ghost", "ghost_password", "ghost"),
        ("mapped", "mapped_password", "app"),
    ] {
        let started = Instant::now();
        let result = connect(proxy.port(), user, password, Some(APP_DB)).and_then(|mut c| {
            // A proxy that connects to the backend lazily reports it here.
            c.query_drop("SELECT 1")
        });
        let elapsed = started.elapsed();
        let err = match result {
            Err(mysql::Error::MySqlError(e)) => e,
            other => panic!("{user}: expected an ERR packet, got {other:?}"),
        };
        assert!(elapsed < Duration::from_secs(5), "{user}: took {elapsed:?}");
        assert!(
            err.message.contains("shard 0"),
            "{user}: the error does not name the shard: {err:?}"
        );
        assert!(
            err.message
                .contains(&format!("Access denied for user '{backend_user}'")),
            "{user}: the error does not give the backend's reason: {err:?}"
        );
    }
    proxy.assert_alive();
    let mut c = connect(proxy.port(), APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
    let one: i32 = c.query_first("SELECT 1").unwrap().unwrap();
    assert_eq!(one, 1);
}
