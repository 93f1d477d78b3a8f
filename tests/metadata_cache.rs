//! MariaDB's metadata caching (`MARIADB_CLIENT_CACHE_METADATA`) through
//! dbrouter, with the `mysql` crate, which asks for it: offered in session
//! mode, where the server leaves a prepared statement's column definitions
//! out of its executes exactly as it does for a direct client; never offered
//! in transaction mode; and a result whose definitions the client does not
//! hold (shards whose tables differ) is refused, never misread.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

use common::*;
use dbrouter::protocol::consts::caps::CLIENT_MYSQL;
use dbrouter::protocol::consts::mariadb::MARIADB_CLIENT_CACHE_METADATA;
use dbrouter::protocol::frame::{parse_header, write_packet};
use dbrouter::protocol::handshake::Greeting;
use mysql::prelude::*;
use mysql::{Conn, Row, Value};

/// The standard and MariaDB extended capabilities in a server's greeting.
fn greeting_caps(port: u16) -> (u32, u32) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut header = [0u8; 4];
    s.read_exact(&mut header).unwrap();
    let mut payload = vec![0u8; parse_header(&header).unwrap().len];
    s.read_exact(&mut payload).unwrap();
    let g = Greeting::parse(&payload).unwrap();
    (g.capabilities, g.mariadb_capabilities)
}

fn bytes_sent(c: &mut Conn) -> u64 {
    let (_, n): (String, u64) = c
        .query_first("SHOW SESSION STATUS LIKE 'Bytes_sent'")
        .unwrap()
        .unwrap();
    n
}

/// Bytes the server sends for ten executes of a prepared six-column
/// select, after a first one (and one status query, the same both ways).
fn bytes_for_ten_executes(c: &mut Conn) -> u64 {
    let stmt = c.prep("SELECT * FROM wide WHERE id = ?").unwrap();
    c.exec_drop(&stmt, (1,)).unwrap();
    let before = bytes_sent(c);
    for _ in 0..10 {
        let rows: Vec<Row> = c.exec(&stmt, (1,)).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].len(), 6);
    }
    bytes_sent(c) - before
}

#[test]
fn session_mode_executes_skip_definitions_as_directly() {
    let db = MariaDb::start();
    db.sql(
        "CREATE TABLE app.wide (id INT PRIMARY KEY, a VARCHAR(20), b VARCHAR(20), \
         c DOUBLE, d DATETIME, e BLOB); \
         INSERT INTO app.wide VALUES (1, 'x', 'y', 1.5, '2026-11-22 07:00:00', 'z')",
    );
    let (_, offered) = greeting_caps(db.port());
    assert_ne!(
        offered & MARIADB_CLIENT_CACHE_METADATA,
        0,
        "the server offers it"
    );
    let proxy = proxy_for(&db);
    let (caps, ours) = greeting_caps(proxy.port());
    assert_eq!(
        caps & CLIENT_MYSQL,
        0,
        "bit 0 clear: extended capabilities follow"
    );
    assert_eq!(ours, MARIADB_CLIENT_CACHE_METADATA, "only metadata caching");

    let direct = bytes_for_ten_executes(&mut db.app_conn());
    let mut c = proxy.target().conn();
    let through = bytes_for_ten_executes(&mut c);
    // Six column definitions are over 200 bytes per execute: ten executes
    // with them would be 2 kB more. The status values may differ in width.
    assert!(
        through.abs_diff(direct) <= 8,
        "server bytes for ten executes: {through} through dbrouter, {direct} directly"
    );

    // The table changes: the server sends the new definitions with the
    // next execute, and the client reads the new column.
    let stmt = c.prep("SELECT * FROM wide WHERE id = ?").unwrap();
    db.sql("ALTER TABLE app.wide ADD COLUMN f INT NOT NULL DEFAULT 7");
    let row: Row = c.exec_first(&stmt, (1,)).unwrap().unwrap();
    assert_eq!(row.len(), 7);
    assert_eq!(row.columns_ref()[6].name_str(), "f");
    assert_eq!(row[6], Value::Int(7));
    let again: Row = c.exec_first(&stmt, (1,)).unwrap().unwrap();
    assert_eq!(again.len(), 7);
}

#[test]
fn transaction_mode_does_not_offer_it() {
    let db = MariaDb::start();
    let proxy = Dbrouter::start(
        &standard_config(&db)
            .set("pool_mode", "\"transaction\"")
            .build(),
    );
    let (caps, ours) = greeting_caps(proxy.port());
    assert_eq!(caps & CLIENT_MYSQL, CLIENT_MYSQL);
    assert_eq!(ours, 0);
    // Executes still carry their definitions and read right.
    let mut c = proxy.target().conn();
    let stmt = c.prep("SELECT ? + 1, 'two'").unwrap();
    for n in 0..3 {
        let got: Option<(i64, String)> = c.exec_first(&stmt, (n,)).unwrap();
        assert_eq!(got, Some((n + 1, "two".into())));
    }
}

/// A proxy config for shards at `addrs` (0 designated); `t` is sharded on `k`.
fn sharded_config(addrs: &[SocketAddr]) -> String {
    let mut toml = format!(
        "[proxy]\nlisten = \"127.0.0.1:{}\"\nreactors = 1\n\n\
         [backend_users]\nadmin_user = \"{ADMIN_USER}\"\nadmin_password = \"{ADMIN_PASSWORD}\"\n\n\
         [sharding]\nbuckets = 64\ndefault_shard = 0\n\n\
         [[table]]\nname = \"t\"\nkey = \"k\"\nkey_type = \"int\"\n",
        free_port()
    );
    for (i, addr) in addrs.iter().enumerate() {
        toml.push_str(&format!("\n[[shard]]\nid = {i}\nmaster = \"{addr}\"\n"));
    }
    toml
}

/// A stand-in for a shard that only greets: each connection gets
/// `greeting` (or nothing) and is closed.
fn greeter(greeting: Option<Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            if let Some(g) = &greeting {
                let _ = s.write_all(g);
            }
        }
    });
    addr
}

#[test]
fn offered_only_when_every_shard_offers_it() {
    let db = MariaDb::start();
    // A MySQL-style greeting: bit 0 set, no extended capabilities.
    let mut mysql = Vec::new();
    let mut payload = Vec::new();
    Greeting {
        server_version: b"8.0.40",
        connection_id: 1,
        scramble: *b"abcdefghijklmnopqrst",
        capabilities: 0xffff_f7ff,
        mariadb_capabilities: 0,
        charset: 45,
        status: 2,
        auth_plugin: b"mysql_native_password",
    }
    .write(&mut payload);
    write_packet(&mut mysql, 0, &payload);
    for other in [greeter(Some(mysql)), greeter(None)] {
        let proxy = Dbrouter::start(&sharded_config(&[db.addr(), other]));
        let (caps, ours) = greeting_caps(proxy.port());
        assert_eq!((caps & CLIENT_MYSQL, ours), (CLIENT_MYSQL, 0));
        // Clients of the real shard work as ever.
        let mut c = proxy.target().conn();
        let got: Option<i64> = c.exec_first("SELECT ? + 1", (41,)).unwrap();
        assert_eq!(got, Some(42));
    }
}

/// Two shards; `t` is sharded on `k`.
fn two_shards() -> (Vec<MariaDb>, Dbrouter, [i64; 2]) {
    let shards: Vec<MariaDb> = (0..2).map(|_| MariaDb::start()).collect();
    for db in &shards {
        db.sql("CREATE TABLE app.t (k BIGINT PRIMARY KEY, v VARCHAR(10))");
    }
    let addrs: Vec<SocketAddr> = shards.iter().map(MariaDb::addr).collect();
    let proxy = Dbrouter::start(&sharded_config(&addrs));
    let (_, offered) = greeting_caps(proxy.port());
    assert_eq!(offered, MARIADB_CLIENT_CACHE_METADATA);
    // A key on each shard, found by writing through the proxy and looking.
    let mut keys = [None, None];
    let mut c = proxy.target().conn();
    for k in 1..100i64 {
        c.exec_drop("INSERT INTO t (k, v) VALUES (?, 'v')", (k,))
            .unwrap();
        for (i, db) in shards.iter().enumerate() {
            let here: Vec<i64> = db.query(&format!("SELECT k FROM app.t WHERE k = {k}"));
            if !here.is_empty() && keys[i].is_none() {
                keys[i] = Some(k);
            }
        }
        if keys.iter().all(Option::is_some) {
            return (shards, proxy, keys.map(Option::unwrap));
        }
    }
    panic!("no key found for each shard");
}

#[test]
fn a_result_without_the_clients_definitions_is_refused_not_misread() {
    let (shards, proxy, [k0, k1]) = two_shards();
    let mut c = proxy.target().conn();
    let stmt = c.prep("SELECT * FROM t WHERE k = ?").unwrap();
    for k in [k0, k1, k0, k1] {
        let row: Row = c.exec_first(&stmt, (k,)).unwrap().unwrap();
        assert_eq!(row.len(), 2, "same columns on both shards");
    }

    // Shard 0 gets a column first: its next execute sends the new
    // definitions, which the client now holds.
    shards[0].sql("ALTER TABLE app.t ADD COLUMN w INT NOT NULL DEFAULT 5");
    let row: Row = c.exec_first(&stmt, (k0,)).unwrap().unwrap();
    assert_eq!(row.len(), 3);
    // Shard 1 would leave its (two) definitions out: the client must not
    // read its rows with shard 0's three.
    let err = c.exec_first::<Row, _, _>(&stmt, (k1,)).unwrap_err();
    match err {
        mysql::Error::MySqlError(e) => {
            assert_eq!((e.code, e.state.as_str()), (1615, "HY000"), "{}", e.message);
            assert!(
                e.message.contains("prepare the statement again"),
                "{}",
                e.message
            );
        }
        other => panic!("expected ER_NEED_REPREPARE, got {other:?}"),
    }
    // The connection lives on, shard 0 still answers, and so does shard 1
    // for a statement prepared with its own definitions.
    let one: Option<i64> = c.query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
    let row: Row = c.exec_first(&stmt, (k0,)).unwrap().unwrap();
    assert_eq!(row.len(), 3);
    let own = c.prep(format!("SELECT * FROM t WHERE k = {k1}")).unwrap();
    let row: Row = c.exec_first(&own, ()).unwrap().unwrap();
    assert_eq!(row.len(), 2);

    // Once shard 1 has the column too, it sends the definitions itself.
    shards[1].sql("ALTER TABLE app.t ADD COLUMN w INT NOT NULL DEFAULT 5");
    for k in [k1, k0, k1] {
        let row: Row = c.exec_first(&stmt, (k,)).unwrap().unwrap();
        assert_eq!(row.len(), 3);
        assert_eq!(row[2], Value::Int(5));
    }
}
