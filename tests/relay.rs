//! The proxy relays what real clients do, and they cannot tell it from the
//! server: every scenario runs directly against MariaDB and then through
//! dbrouter, checks its own expectations both times, and the two outcomes
//! must be equal.

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::raw::{self, RawClient, Reply};
use common::*;
use mysql::prelude::Queryable;
use mysql::{ChangeUserOpts, Conn, LocalInfileHandler, MySqlError, Row, TxOpts, Value};
use sha1::{Digest, Sha1};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha1_hex(bytes: &[u8]) -> String {
    hex(&Sha1::digest(bytes))
}

/// Deterministic bytes covering every byte value.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64).wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i as u8))
        .collect()
}

fn mysql_err(e: mysql::Error) -> MySqlError {
    match e {
        mysql::Error::MySqlError(e) => e,
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// All result sets of a multi-result reply: (column names, rows).
type Sets = Vec<(Vec<String>, Vec<Vec<Value>>)>;

fn collect_sets<P: mysql::prelude::Protocol>(
    mut result: mysql::QueryResult<'_, '_, '_, P>,
) -> mysql::Result<Sets> {
    let mut sets = Vec::new();
    while let Some(set) = result.iter() {
        let columns = set
            .columns()
            .as_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        let mut rows = Vec::new();
        for row in set {
            rows.push(row?.unwrap());
        }
        sets.push((columns, rows));
    }
    Ok(sets)
}

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

const TEXT: &str = "héllo wörld ✓ 日本語 🎉 it's \"quoted\" \\ back\ttab\nnewline";
const DECIMAL: &str = "-12345678901234567890.0123456789";

/// Values of the common types written with a prepared statement, read back
/// through the text and the binary protocol, and echoed with `SELECT ?`.
fn types_scenario(t: &Target) -> (Vec<Vec<Value>>, Vec<Vec<Value>>, Vec<Value>) {
    let mut c = t.conn();
    c.query_drop(
        "DROP TABLE IF EXISTS types;
         CREATE TABLE types (id INT PRIMARY KEY, ti TINYINT, bi BIGINT, ub BIGINT UNSIGNED,
           db DOUBLE, fl FLOAT, de DECIMAL(30,10), s VARCHAR(200) CHARACTER SET utf8mb4,
           n INT NULL, d DATE, dt DATETIME(6), tm TIME(6), b VARBINARY(300))
           DEFAULT CHARSET=utf8mb4",
    )
    .unwrap();
    let bytes: Vec<u8> = (0..=255u8).collect();
    let row1: Vec<Value> = vec![
        Value::Int(1),
        Value::Int(-128),
        Value::Int(i64::MIN),
        Value::UInt(u64::MAX),
        Value::Double(-1.5e300),
        Value::Float(3.25),
        Value::Bytes(DECIMAL.into()),
        Value::Bytes(TEXT.into()),
        Value::NULL,
        Value::Date(2024, 2, 29, 0, 0, 0, 0),
        Value::Date(1999, 12, 31, 23, 59, 59, 123_456),
        Value::Time(true, 34, 22, 59, 59, 0),
        Value::Bytes(bytes.clone()),
    ];
    c.exec_drop(
        "INSERT INTO types VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        row1.clone(),
    )
    .unwrap();
    // The same values as text literals, and the other extremes.
    let text_literal = TEXT
        .replace('\\', "\\\\")
        .replace('\'', "\\'")
        .replace('\n', "\\n")
        .replace('\t', "\\t");
    c.query_drop(format!(
        "INSERT INTO types VALUES
         (2, -128, -9223372036854775808, 18446744073709551615, -1.5e300, 3.25, '{DECIMAL}',
          '{text_literal}', NULL, '2024-02-29', '1999-12-31 23:59:59.123456', '-838:59:59',
          X'{}'),
         (3, 127, 9223372036854775807, 0, 0, -0.5, '0.0000000001', '', NULL, '1000-01-01',
          '9999-12-31 23:59:59.999999', '12:34:56.789', '')",
        hex(&bytes)
    ))
    .unwrap();

    let text_rows: Vec<Row> = c.query("SELECT * FROM types ORDER BY id").unwrap();
    let bin_rows: Vec<Row> = c
        .exec("SELECT * FROM types WHERE id >= ? ORDER BY id", (0,))
        .unwrap();
    assert_eq!(text_rows.len(), 3, "{}", t.name);
    assert_eq!(bin_rows.len(), 3, "{}", t.name);
    // Rows 1 (prepared insert) and 2 (text insert) hold the same values.
    for rows in [&text_rows, &bin_rows] {
        assert_eq!(rows[0].clone().unwrap()[1..], rows[1].clone().unwrap()[1..]);
    }
    for (proto, rows) in [("text", &text_rows), ("binary", &bin_rows)] {
        let r = &rows[0];
        let ctx = format!("{} {proto}", t.name);
        assert_eq!(r.get::<i8, _>(1), Some(-128), "{ctx}");
        assert_eq!(r.get::<i64, _>(2), Some(i64::MIN), "{ctx}");
        assert_eq!(r.get::<u64, _>(3), Some(u64::MAX), "{ctx}");
        assert_eq!(r.get::<f64, _>(4), Some(-1.5e300), "{ctx}");
        assert_eq!(r.get::<f32, _>(5), Some(3.25), "{ctx}");
        assert_eq!(r.get::<String, _>(6).as_deref(), Some(DECIMAL), "{ctx}");
        assert_eq!(r.get::<String, _>(7).as_deref(), Some(TEXT), "{ctx}");
        assert_eq!(r.get::<Option<i32>, _>(8), Some(None), "{ctx}");
        assert_eq!(r.get::<Vec<u8>, _>(12), Some(bytes.clone()), "{ctx}");
        let r3 = &rows[2];
        assert_eq!(r3.get::<i64, _>(2), Some(i64::MAX), "{ctx}");
        assert_eq!(r3.get::<u64, _>(3), Some(0), "{ctx}");
        assert_eq!(r3.get::<String, _>(7).as_deref(), Some(""), "{ctx}");
        assert_eq!(r3.get::<Vec<u8>, _>(12), Some(Vec::new()), "{ctx}");
    }
    let text = &text_rows[0];
    assert_eq!(text.get::<String, _>(9).as_deref(), Some("2024-02-29"));
    assert_eq!(
        text.get::<String, _>(10).as_deref(),
        Some("1999-12-31 23:59:59.123456")
    );
    assert_eq!(
        text.get::<String, _>(11).as_deref(),
        Some("-838:59:59.000000")
    );
    let bin = &bin_rows[0];
    assert_eq!(
        bin.get::<Value, _>(9),
        Some(Value::Date(2024, 2, 29, 0, 0, 0, 0))
    );
    assert_eq!(
        bin.get::<Value, _>(10),
        Some(Value::Date(1999, 12, 31, 23, 59, 59, 123_456))
    );
    assert_eq!(
        bin.get::<Value, _>(11),
        Some(Value::Time(true, 34, 22, 59, 59, 0))
    );
    let bin3 = &bin_rows[2];
    assert_eq!(
        bin3.get::<Value, _>(11),
        Some(Value::Time(false, 0, 12, 34, 56, 789_000))
    );

    // Parameters echoed back by the server.
    let echo: Row = c
        .exec_first(
            "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?",
            vec![
                Value::Int(-1),
                Value::UInt(u64::MAX),
                Value::Double(2.5),
                Value::Bytes(TEXT.into()),
                Value::NULL,
                Value::Date(2001, 2, 3, 4, 5, 6, 7),
                Value::Time(false, 1, 2, 3, 4, 5),
                Value::Bytes(bytes.clone()),
                Value::Bytes(Vec::new()),
                Value::Int(i64::MIN),
            ],
        )
        .unwrap()
        .unwrap();
    assert_eq!(echo.get::<i64, _>(0), Some(-1));
    assert_eq!(echo.get::<u64, _>(1), Some(u64::MAX));
    assert_eq!(echo.get::<f64, _>(2), Some(2.5));
    assert_eq!(echo.get::<String, _>(3).as_deref(), Some(TEXT));
    assert_eq!(echo.get::<Value, _>(4), Some(Value::NULL));
    assert_eq!(echo.get::<Vec<u8>, _>(7), Some(bytes));
    assert_eq!(echo.get::<i64, _>(9), Some(i64::MIN));
    (
        text_rows.into_iter().map(Row::unwrap).collect(),
        bin_rows.into_iter().map(Row::unwrap).collect(),
        echo.unwrap(),
    )
}

#[test]
fn common_types_round_trip_text_and_prepared() {
    let db = MariaDb::start();
    direct_then_proxy(&db, types_scenario);
}

// ---------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------

fn count(c: &mut Conn, sql: &str) -> i64 {
    c.query_first(sql).unwrap().unwrap()
}

/// Rollback discards, commit keeps, and a client that disconnects with an
/// open transaction has it rolled back (its row lock is released).
fn transaction_scenario(t: &Target) -> Vec<i64> {
    let mut c = t.conn();
    let mut other = t.conn();
    c.query_drop("DROP TABLE IF EXISTS tx; CREATE TABLE tx (id INT PRIMARY KEY) ENGINE=InnoDB")
        .unwrap();
    let mut seen = Vec::new();
    {
        let mut tx = c.start_transaction(TxOpts::default()).unwrap();
        tx.exec_drop("INSERT INTO tx VALUES (?)", (1,)).unwrap();
        tx.query_drop("INSERT INTO tx VALUES (2)").unwrap();
        seen.push(tx.query_first("SELECT COUNT(*) FROM tx").unwrap().unwrap());
        tx.rollback().unwrap();
    }
    seen.push(count(&mut c, "SELECT COUNT(*) FROM tx"));
    seen.push(count(&mut other, "SELECT COUNT(*) FROM tx"));
    {
        let mut tx = c.start_transaction(TxOpts::default()).unwrap();
        tx.exec_drop("INSERT INTO tx VALUES (?)", (3,)).unwrap();
        tx.commit().unwrap();
    }
    seen.push(count(&mut other, "SELECT COUNT(*) FROM tx"));
    c.query_drop("BEGIN; INSERT INTO tx VALUES (4); ROLLBACK")
        .unwrap();
    seen.push(count(&mut other, "SELECT COUNT(*) FROM tx"));
    assert_eq!(seen, vec![2, 0, 0, 1, 1], "{}", t.name);

    // Disconnect in the middle of a transaction holding a row lock.
    let mut quitter = t.conn();
    quitter
        .query_drop("SET autocommit = 0; INSERT INTO tx VALUES (5)")
        .unwrap();
    drop(quitter);
    other
        .query_drop("SET SESSION innodb_lock_wait_timeout = 1")
        .unwrap();
    let inserted = wait_for(Duration::from_secs(10), || {
        other.query_drop("INSERT INTO tx VALUES (5)").ok()
    });
    assert!(
        inserted.is_some(),
        "{}: the disconnected client's transaction still holds its lock",
        t.name
    );
    seen.push(count(&mut other, "SELECT COUNT(*) FROM tx"));
    seen
}

#[test]
fn transaction_rollback_commit_and_disconnect() {
    let db = MariaDb::start();
    direct_then_proxy(&db, transaction_scenario);
}

// ---------------------------------------------------------------------------
// Large values
// ---------------------------------------------------------------------------

/// A BLOB of `size` bytes written as a text literal and as a prepared
/// parameter (sent as COM_STMT_SEND_LONG_DATA), read back both ways.
fn blob_scenario(t: &Target, size: usize) -> Vec<(i64, String)> {
    let data = pattern(size);
    let digest = sha1_hex(&data);
    let mut c = t.conn();
    c.query_drop("DROP TABLE IF EXISTS blobs; CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB)")
        .unwrap();
    c.query_drop(format!("INSERT INTO blobs VALUES (1, X'{}')", hex(&data)))
        .unwrap();
    c.exec_drop("INSERT INTO blobs VALUES (?, ?)", (2, &data))
        .unwrap();
    let text: Vec<u8> = c
        .query_first("SELECT b FROM blobs WHERE id = 2")
        .unwrap()
        .unwrap();
    assert!(
        text == data,
        "{}: text read of the prepared write differs",
        t.name
    );
    let bin: Vec<u8> = c
        .exec_first("SELECT b FROM blobs WHERE id = ?", (1,))
        .unwrap()
        .unwrap();
    assert!(
        bin == data,
        "{}: binary read of the text write differs",
        t.name
    );
    let server: Vec<(i64, String)> = c
        .query("SELECT LENGTH(b), SHA1(b) FROM blobs ORDER BY id")
        .unwrap();
    assert_eq!(
        server,
        vec![(size as i64, digest.clone()), (size as i64, digest)],
        "{}",
        t.name
    );
    server
}

#[test]
fn blob_5_mb_round_trip() {
    let db = MariaDb::start();
    direct_then_proxy(&db, |t| blob_scenario(t, 5 * 1024 * 1024));
}

/// Over 16 MiB: packets split at 2^24-1 bytes in both directions.
#[test]
fn blob_20_mb_round_trip() {
    let db = MariaDb::start();
    direct_then_proxy(&db, |t| blob_scenario(t, 20 * 1024 * 1024));
}

/// A 10,000-row result, text and binary: count, sums and a digest of every
/// value.
fn many_rows_scenario(t: &Target) -> (String, String) {
    let sql = "SELECT seq, MD5(seq), REPEAT(CHAR(65 + seq % 26), seq % 100),
                      IF(seq % 7 = 0, NULL, seq * 1.5)
               FROM seq_1_to_10000 ORDER BY seq";
    let mut c = t.conn();
    let digest = |rows: Vec<(u64, String, String, Option<f64>)>| {
        assert_eq!(rows.len(), 10_000, "{}", t.name);
        let sum: u64 = rows.iter().map(|r| r.0).sum();
        assert_eq!(sum, 50_005_000);
        let lengths: usize = rows.iter().map(|r| r.2.len()).sum();
        assert_eq!(lengths, (1..=10_000usize).map(|i| i % 100).sum::<usize>());
        assert_eq!(rows.iter().filter(|r| r.3.is_none()).count(), 10_000 / 7);
        let mut h = Sha1::new();
        for r in &rows {
            h.update(format!("{:?}\n", r).as_bytes());
        }
        hex(&h.finalize())
    };
    let text = digest(c.query(sql).unwrap());
    let bin = digest(c.exec(sql, ()).unwrap());
    assert_eq!(text, bin, "{}", t.name);
    (text, bin)
}

#[test]
fn ten_thousand_rows() {
    let db = MariaDb::start();
    direct_then_proxy(&db, many_rows_scenario);
}

// ---------------------------------------------------------------------------
// Multiple result sets
// ---------------------------------------------------------------------------

/// Multi-statements, an error in the middle of them, and a procedure
/// returning several result sets (text and prepared CALL).
fn multi_result_scenario(t: &Target) -> (Sets, Sets, MySqlError, Sets, Sets) {
    let mut c = t.conn();
    let multi = collect_sets(
        c.query_iter("SELECT 1; SELECT 2, 3 AS three; DO 0; SELECT 'x' AS s")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(multi.len(), 4, "{}: {multi:?}", t.name);
    assert_eq!(multi[1].0, vec!["2", "three"]);
    assert_eq!(
        multi[1].1,
        vec![vec![
            Value::Bytes(b"2".to_vec()),
            Value::Bytes(b"3".to_vec())
        ]]
    );
    assert!(multi[2].1.is_empty());

    // The statements after a failing one are not run.
    let mut partial = Vec::new();
    let mut result = c.query_iter("SELECT 1; SELEC 2; SELECT 3").unwrap();
    let err = loop {
        match result.iter() {
            Some(set) => {
                let rows: Result<Vec<Row>, _> = set.collect();
                match rows {
                    Ok(rows) => {
                        partial.push((Vec::new(), rows.into_iter().map(Row::unwrap).collect()))
                    }
                    Err(e) => break mysql_err(e),
                }
            }
            None => panic!("{}: no error from SELEC", t.name),
        }
    };
    drop(result);
    assert_eq!(err.code, 1064);
    let one: i32 = c.query_first("SELECT 1").unwrap().unwrap();
    assert_eq!(
        one, 1,
        "{}: connection unusable after a multi-statement error",
        t.name
    );

    c.query_drop(
        "DROP PROCEDURE IF EXISTS multi;
         CREATE PROCEDURE multi(IN n INT)
         BEGIN
           SELECT n AS a;
           SELECT n + 1 AS b, 'two' AS c;
           SELECT seq FROM seq_1_to_3;
         END",
    )
    .unwrap();
    let called = collect_sets(c.query_iter("CALL multi(5)").unwrap()).unwrap();
    assert!(called.len() >= 3, "{}: {called:?}", t.name);
    assert_eq!(called[0].1, vec![vec![Value::Bytes(b"5".to_vec())]]);
    assert_eq!(called[2].1.len(), 3);
    let prepared = collect_sets(c.exec_iter("CALL multi(?)", (5,)).unwrap()).unwrap();
    assert!(prepared.len() >= 3, "{}: {prepared:?}", t.name);
    assert_eq!(prepared[1].1[0][1], Value::Bytes(b"two".to_vec()));
    (multi, partial, err, called, prepared)
}

#[test]
fn multi_statements_and_procedure_result_sets() {
    let db = MariaDb::start();
    direct_then_proxy(&db, multi_result_scenario);
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Server errors arrive with code, SQLSTATE and message intact, and the
/// connection keeps working after each.
fn errors_scenario(t: &Target) -> Vec<MySqlError> {
    let mut c = t.conn();
    c.query_drop("DROP TABLE IF EXISTS e; CREATE TABLE e (id INT PRIMARY KEY)")
        .unwrap();
    c.query_drop("INSERT INTO e VALUES (1)").unwrap();
    let mut errors = Vec::new();
    let mut check = |c: &mut Conn, r: mysql::Result<()>, code: u16, state: &str| {
        let e = mysql_err(r.unwrap_err());
        assert_eq!((e.code, e.state.as_str()), (code, state), "{}: {e}", t.name);
        let one: i32 = c.query_first("SELECT 1").unwrap().unwrap();
        assert_eq!(one, 1);
        errors.push(e);
    };
    let r = c.query_drop("SELEC 1");
    check(&mut c, r, 1064, "42000");
    let r = c.query_drop("INSERT INTO e VALUES (1)");
    check(&mut c, r, 1062, "23000");
    let r = c.query_drop("SELECT * FROM nope");
    check(&mut c, r, 1146, "42S02");
    let r = c.query_drop("SELECT * FROM mysql.user");
    check(&mut c, r, 1142, "42000");
    let r = c.query_drop(
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom ü error', MYSQL_ERRNO = 1644",
    );
    check(&mut c, r, 1644, "45000");
    let r = c.prep("SELECT * FROM nope WHERE id = ?").map(drop);
    check(&mut c, r, 1146, "42S02");
    let r = c.exec_drop("INSERT INTO e VALUES (?)", (1,));
    check(&mut c, r, 1062, "23000");
    let r = c.exec_drop("SELECT ?", (1, 2));
    // A client-side check in the crate: the count never reaches the server.
    assert!(matches!(r, Err(mysql::Error::DriverError(_))));
    let r = c.query_drop(format!("SELECT {}", "x".repeat(300)));
    check(&mut c, r, 1054, "42S22");
    assert_eq!(errors[2].message, "Table 'app.nope' doesn't exist");
    errors
}

#[test]
fn errors_keep_code_sqlstate_and_message() {
    let db = MariaDb::start();
    direct_then_proxy(&db, errors_scenario);
}

// ---------------------------------------------------------------------------
// LOAD DATA LOCAL INFILE
// ---------------------------------------------------------------------------

const INFILE_ROWS: u64 = 5_000;

/// LOAD DATA LOCAL INFILE of a few thousand rows (about 500 KB, more than a
/// proxy buffer) through the crate's handler.
fn local_infile_scenario(t: &Target) -> (u64, Vec<(u64, u64, u64)>) {
    let mut c = t.conn();
    c.query_drop("DROP TABLE IF EXISTS li; CREATE TABLE li (id INT PRIMARY KEY, pad VARCHAR(200))")
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    c.set_local_infile_handler(Some(LocalInfileHandler::new(move |name, w| {
        tx.send(name.to_vec()).unwrap();
        for i in 0..INFILE_ROWS {
            writeln!(w, "{i},{}", "p".repeat((i % 100) as usize))?;
        }
        Ok(())
    })));
    c.query_drop("LOAD DATA LOCAL INFILE 'rows.csv' INTO TABLE li FIELDS TERMINATED BY ','")
        .unwrap();
    let affected = c.affected_rows();
    assert_eq!(affected, INFILE_ROWS, "{}", t.name);
    assert_eq!(rx.try_recv().unwrap(), b"rows.csv");
    let stats: Vec<(u64, u64, u64)> = c
        .query("SELECT COUNT(*), SUM(id), SUM(LENGTH(pad)) FROM li")
        .unwrap();
    let pads: u64 = (0..INFILE_ROWS).map(|i| i % 100).sum();
    assert_eq!(
        stats,
        vec![(INFILE_ROWS, INFILE_ROWS * (INFILE_ROWS - 1) / 2, pads)],
        "{}",
        t.name
    );
    (affected, stats)
}

#[test]
fn load_data_local_infile() {
    let db = MariaDb::start();
    direct_then_proxy(&db, local_infile_scenario);
}

// ---------------------------------------------------------------------------
// Session commands
// ---------------------------------------------------------------------------

/// What a connection experiences after a failed COM_CHANGE_USER.
#[derive(Debug, PartialEq)]
enum AfterFailure {
    Works(String),
    ServerError(u16, String),
    Closed,
}

/// COM_CHANGE_USER to another account and back (session state dropped),
/// then with a wrong password: the error, then what the connection does.
fn change_user_scenario(t: &Target) -> (Vec<String>, MySqlError, AfterFailure) {
    let mut c = t.conn();
    let mut users = Vec::new();
    c.query_drop("SET @v = 1").unwrap();
    users.push(c.query_first("SELECT CURRENT_USER()").unwrap().unwrap());
    c.change_user(
        ChangeUserOpts::default()
            .with_user(Some("other".into()))
            .with_pass(Some("other_password".into()))
            .with_db_name(Some(APP_DB.into())),
    )
    .unwrap();
    users.push(c.query_first("SELECT CURRENT_USER()").unwrap().unwrap());
    let v: Option<i32> = c.query_first("SELECT @v").unwrap().unwrap();
    assert_eq!(v, None, "{}: session variable survived change_user", t.name);
    c.change_user(
        ChangeUserOpts::default()
            .with_user(Some(APP_USER.into()))
            .with_pass(Some(APP_PASSWORD.into()))
            .with_db_name(Some(APP_DB.into())),
    )
    .unwrap();
    users.push(c.query_first("SELECT CURRENT_USER()").unwrap().unwrap());
    assert_eq!(users, vec!["app@%", "other@%", "app@%"], "{}", t.name);

    let err = mysql_err(
        c.change_user(
            ChangeUserOpts::default()
                .with_user(Some("other".into()))
                .with_pass(Some("wrong".into())),
        )
        .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.state.as_str()),
        (1045, "28000"),
        "{}: {err}",
        t.name
    );
    assert_eq!(
        err.message,
        "Access denied for user 'other'@'127.0.0.1' (using password: YES)"
    );
    // MariaDB keeps the previous account after a failed change.
    let after = match c.query_first::<String, _>("SELECT CURRENT_USER()") {
        Ok(u) => AfterFailure::Works(u.unwrap_or_default()),
        Err(mysql::Error::MySqlError(e)) => AfterFailure::ServerError(e.code, e.state),
        Err(_) => AfterFailure::Closed,
    };
    assert_eq!(after, AfterFailure::Works("app@%".into()), "{}", t.name);
    (users, err, after)
}

#[test]
fn change_user_and_back_and_wrong_password() {
    let db = MariaDb::start();
    db.sql(
        "CREATE USER 'other'@'%' IDENTIFIED BY 'other_password';
         GRANT SELECT ON app.* TO 'other'@'%'",
    );
    direct_then_proxy(&db, change_user_scenario);
}

/// The general log's command types for sessions whose user_host is LIKE this.
fn general_log_commands(db: &MariaDb, user_host_like: &str) -> Vec<String> {
    db.query(&format!(
        "SELECT command_type FROM mysql.general_log WHERE user_host LIKE '{user_host_like}'"
    ))
}

/// conn.reset() uses COM_RESET_CONNECTION (MariaDB >= 10.2.7 in the crate)
/// and clears user variables and temporary tables; a raw
/// COM_RESET_CONNECTION does the same.
fn reset_scenario(db: &MariaDb, t: &Target) -> Vec<String> {
    db.sql("TRUNCATE TABLE mysql.general_log");
    let mut c = t.conn();
    c.query_drop("SET @v = 42; CREATE TEMPORARY TABLE tmp_r (x INT); INSERT INTO tmp_r VALUES (1)")
        .unwrap();
    c.reset().unwrap();
    let v: Option<i32> = c.query_first("SELECT @v").unwrap().unwrap();
    assert_eq!(v, None, "{}: user variable survived reset", t.name);
    let e = mysql_err(c.query_drop("SELECT * FROM tmp_r").unwrap_err());
    assert_eq!(e.code, 1146, "{}: temporary table survived reset", t.name);
    let db_name: Option<String> = c.query_first("SELECT DATABASE()").unwrap().unwrap();
    assert_eq!(db_name.as_deref(), Some(APP_DB));
    // MariaDB does not write COM_RESET_CONNECTION to the general log, but
    // it does write COM_CHANGE_USER, the crate's only other way to reset.
    let commands = general_log_commands(db, "app[app] @ %");
    assert!(
        !commands.iter().any(|c| c == "Change user"),
        "{}: reset became COM_CHANGE_USER: {commands:?}",
        t.name
    );

    let mut r = RawClient::login_to(t.port, APP_USER, APP_PASSWORD, Some(APP_DB));
    assert!(matches!(r.query("SET @w = 7").unwrap(), Reply::Ok { .. }));
    let reply = r.command(&[0x1f]).unwrap();
    assert!(matches!(reply, Reply::Ok { .. }), "{}: {reply:?}", t.name);
    assert_eq!(
        r.query("SELECT @w").unwrap().rows_text(),
        vec![vec!["NULL"]]
    );
    commands
}

#[test]
fn reset_connection_clears_session_state() {
    let db = MariaDb::start_with(&["--general-log=1", "--log-output=TABLE"]);
    direct_then_proxy(&db, |t| {
        let mut commands = reset_scenario(&db, t);
        commands.retain(|c| c == "Change user");
        commands
    });
}

/// What COM_STATISTICS says, with the numbers masked.
fn mask_digits(s: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for ch in s.chars() {
        if ch.is_ascii_digit() || (in_number && ch == '.') {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(ch);
        }
    }
    out
}

/// COM_PING, COM_INIT_DB (select_db, including refusals), COM_STATISTICS
/// and COM_FIELD_LIST.
fn session_commands_scenario(t: &Target) -> (Vec<MySqlError>, String, Vec<String>, Reply) {
    let mut c = t.conn();
    c.query_drop("DROP TABLE IF EXISTS fl; CREATE TABLE fl (id INT PRIMARY KEY, name VARCHAR(20), other INT)")
        .unwrap();
    c.ping().unwrap();
    c.select_db(APP_DB).unwrap();
    let mut errors = Vec::new();
    for db in ["nope_db", "other_db"] {
        errors.push(mysql_err(c.select_db(db).unwrap_err()));
    }
    // Without rights on it, a missing database looks like a forbidden one.
    assert_eq!((errors[0].code, errors[0].state.as_str()), (1044, "42000"));
    assert_eq!(
        errors[0].message,
        "Access denied for user 'app'@'%' to database 'nope_db'"
    );
    assert_eq!((errors[1].code, errors[1].state.as_str()), (1044, "42000"));
    assert_eq!(
        errors[1].message,
        "Access denied for user 'app'@'%' to database 'other_db'"
    );
    let current: Option<String> = c.query_first("SELECT DATABASE()").unwrap().unwrap();
    assert_eq!(current.as_deref(), Some(APP_DB), "{}", t.name);
    c.ping().unwrap();

    let mut r = RawClient::login_to(t.port, APP_USER, APP_PASSWORD, None);
    let mut init_db = vec![raw::COM_INIT_DB];
    init_db.extend_from_slice(b"app");
    assert!(matches!(r.command(&init_db).unwrap(), Reply::Ok { .. }));
    assert!(matches!(
        r.command(&[raw::COM_PING]).unwrap(),
        Reply::Ok { .. }
    ));
    r.seq = 0;
    r.write_packet(&[raw::COM_STATISTICS]).unwrap();
    let stats = String::from_utf8(r.read_packet().unwrap().1).unwrap();
    let stats = mask_digits(&stats);
    assert!(
        stats.starts_with("Uptime: N  Threads: N  Questions: N"),
        "{}: {stats}",
        t.name
    );

    r.seq = 0;
    r.write_packet(b"\x04fl\0").unwrap();
    let mut fields = Vec::new();
    loop {
        let (_, p) = r.read_packet().unwrap();
        if p.first() == Some(&0xfe) && p.len() < 9 {
            break;
        }
        assert_ne!(
            p.first(),
            Some(&0xff),
            "{}: {:?}",
            t.name,
            raw::ErrPacket::parse(&p)
        );
        fields.push(p);
    }
    let names: Vec<String> = fields
        .iter()
        .map(|p| {
            // catalog, schema, table, org_table, name
            let mut at = 0;
            let mut name = String::new();
            for i in 0..5 {
                let (len, n) = raw::lenenc_int(&p[at..]).unwrap();
                if i == 4 {
                    name = String::from_utf8_lossy(&p[at + n..at + n + len as usize]).into_owned();
                }
                at += n + len as usize;
            }
            name
        })
        .collect();
    assert_eq!(names, vec!["id", "name", "other"], "{}", t.name);
    // And the connection still answers.
    let after = r.query("SELECT 'still here'").unwrap();
    assert_eq!(after.rows_text(), vec![vec!["still here"]]);
    (errors, stats, names, after)
}

#[test]
fn ping_init_db_statistics_field_list() {
    let db = MariaDb::start();
    db.sql("CREATE DATABASE other_db");
    direct_then_proxy(&db, session_commands_scenario);
}

/// Two commands written at once are both answered, in order (B1
/// pipelining).
fn pipelined_scenario(t: &Target) -> Vec<Vec<Vec<String>>> {
    let mut r = RawClient::login_to(t.port, APP_USER, APP_PASSWORD, Some(APP_DB));
    let mut bytes = Vec::new();
    for sql in [
        "SELECT 'first'",
        "SELECT 'second', 2",
        "SELECT SLEEP(0.2) + 3",
    ] {
        let mut p = vec![raw::COM_QUERY];
        p.extend_from_slice(sql.as_bytes());
        bytes.extend_from_slice(&(p.len() as u32).to_le_bytes()[..3]);
        bytes.push(0);
        bytes.extend_from_slice(&p);
    }
    r.write_raw(&bytes).unwrap();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (reply, more) = r.read_reply().unwrap();
        assert!(!more);
        answers.push(reply.rows_text());
    }
    assert_eq!(
        answers,
        vec![
            vec![vec!["first".to_string()]],
            vec![vec!["second".to_string(), "2".to_string()]],
            vec![vec!["3".to_string()]],
        ],
        "{}",
        t.name
    );
    answers
}

#[test]
fn pipelined_commands_answered_in_order() {
    let db = MariaDb::start();
    direct_then_proxy(&db, pipelined_scenario);
}

/// Appends one packet with sequence id 0 (a command) to `bytes`.
fn command_packet(bytes: &mut Vec<u8>, payload: &[u8]) {
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes()[..3]);
    bytes.push(0);
    bytes.extend_from_slice(payload);
}

/// COM_STMT_PREPARE on a raw connection: the statement id, with the
/// parameter and column definitions read past (no CLIENT_DEPRECATE_EOF).
fn raw_prepare(r: &mut RawClient, sql: &str) -> u32 {
    r.seq = 0;
    r.write_packet(&[&[0x16][..], sql.as_bytes()].concat())
        .unwrap();
    let (_, ok) = r.read_packet().unwrap();
    assert_eq!(ok[0], 0, "prepare {sql}: {:?}", raw::ErrPacket::parse(&ok));
    let id = u32::from_le_bytes(ok[1..5].try_into().unwrap());
    let columns = u16::from_le_bytes([ok[5], ok[6]]) as usize;
    let params = u16::from_le_bytes([ok[7], ok[8]]) as usize;
    let definitions = [params, columns]
        .iter()
        .map(|&n| if n > 0 { n + 1 } else { 0 })
        .sum::<usize>();
    for _ in 0..definitions {
        r.read_packet().unwrap();
    }
    id
}

/// A COUNT(*) as the server answers it now.
fn count_now(db: &MariaDb, sql: &str) -> i64 {
    db.root_conn().query_first(sql).unwrap().unwrap()
}

/// Whether `done` comes true within `limit` (asked every 50 ms).
fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The app user's connections the server has open.
const APP_CONNECTIONS: &str =
    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'";

fn global_status(db: &MariaDb, name: &str) -> u64 {
    let row: Option<(String, u64)> = db
        .root_conn()
        .query_first(format!("SHOW GLOBAL STATUS LIKE '{name}'"))
        .unwrap();
    row.unwrap().1
}

/// How a client leaves after writing its last commands in one go.
#[derive(Clone, Copy, Debug)]
enum Leaving {
    /// close() at once, without reading (what sysbench does).
    Close,
    /// shutdown(SHUT_WR), then read everything until the server closes.
    HalfClose,
}

/// A client's last commands written at once as it leaves: three statement
/// closes, an INSERT and COM_QUIT in one write. The server gets every one:
/// its statements closed, the row in, and a goodbye rather than an aborted
/// connection. Returns (aborted connections, statements closed, rows
/// inserted, what a half-closing client read).
fn last_words_scenario(db: &MariaDb, t: &Target, leaving: Leaving) -> (u64, u64, i64, String) {
    let rows = || count_now(db, "SELECT COUNT(*) FROM app.last_words");
    let (aborted, closed, inserted) = (
        global_status(db, "Aborted_clients"),
        global_status(db, "Com_stmt_close"),
        rows(),
    );
    let mut r = RawClient::login_to(t.port, APP_USER, APP_PASSWORD, Some(APP_DB));
    let ids: Vec<u32> = (0..3)
        .map(|i| raw_prepare(&mut r, &format!("SELECT {i} + ?")))
        .collect();
    let mut bytes = Vec::new();
    for id in &ids {
        command_packet(&mut bytes, &[&[0x19][..], &id.to_le_bytes()].concat());
    }
    command_packet(&mut bytes, b"\x03INSERT INTO last_words VALUES (1)");
    command_packet(&mut bytes, &[raw::COM_QUIT]);
    r.write_raw(&bytes).unwrap();
    let mut heard = String::new();
    match leaving {
        Leaving::Close => drop(r),
        Leaving::HalfClose => {
            r.stream.shutdown(std::net::Shutdown::Write).unwrap();
            let (rest, closed) = r.read_until_closed(Duration::from_secs(10));
            assert!(closed, "{}: the connection stayed open", t.name);
            heard = format!("{:?}", raw::split_packets(&rest));
        }
    }
    // The server has heard the client out once the app's connection is gone.
    let gone = eventually(Duration::from_secs(5), || {
        count_now(db, APP_CONNECTIONS) == 0
    });
    assert!(gone, "{}: the server still has the connection", t.name);
    let outcome = (
        global_status(db, "Aborted_clients") - aborted,
        global_status(db, "Com_stmt_close") - closed,
        rows() - inserted,
        heard,
    );
    assert_eq!(
        (outcome.0, outcome.1, outcome.2),
        (0, 3, 1),
        "{} ({leaving:?}): aborted connections, statements closed, rows inserted",
        t.name
    );
    outcome
}

#[test]
fn last_commands_before_a_close_reach_the_server() {
    let db = MariaDb::start();
    db.sql("CREATE TABLE app.last_words (id INT)");
    direct_then_proxy(&db, |t| last_words_scenario(&db, t, Leaving::Close));
}

#[test]
fn last_commands_before_a_half_close_are_answered() {
    let db = MariaDb::start();
    db.sql("CREATE TABLE app.last_words (id INT)");
    let (heard, _) = direct_then_proxy(&db, |t| last_words_scenario(&db, t, Leaving::HalfClose));
    assert!(heard.3.contains("[0, 1, 0"), "the INSERT's OK: {}", heard.3);
}

/// A client that leaves while its statement waits: the server hears the
/// close as from a direct client (the proxy passes the end of the client's
/// input on), so a SLEEP, which watches its connection, stops within
/// seconds instead of holding a server thread to its end. Returns whether
/// the server let go of the connection in time.
fn left_while_waiting_scenario(db: &MariaDb, t: &Target) -> bool {
    let mut r = RawClient::login_to(t.port, APP_USER, APP_PASSWORD, Some(APP_DB));
    r.seq = 0;
    r.write_packet(b"\x03SELECT SLEEP(60)").unwrap();
    // The statement is running on the server before the client leaves.
    let running = eventually(Duration::from_secs(5), || {
        count_now(
            db,
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(60)'",
        ) == 1
    });
    assert!(running, "{}: the SLEEP never started", t.name);
    drop(r);
    // MariaDB looks at a sleeping statement's connection every 5 s.
    let released = eventually(Duration::from_secs(15), || {
        count_now(db, APP_CONNECTIONS) == 0
    });
    assert!(
        released,
        "{}: the server still runs the SLEEP 15 s after the client left",
        t.name
    );
    released
}

#[test]
fn a_client_leaving_mid_statement_is_heard_by_the_server() {
    let db = MariaDb::start();
    direct_then_proxy(&db, |t| left_while_waiting_scenario(&db, t));
}
