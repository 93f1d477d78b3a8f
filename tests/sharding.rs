//! Sharding end to end on four real MariaDB shards: rows written through
//! dbrouter land on the shard their key maps to (read back from each shard
//! directly), reads through dbrouter return exactly each key's rows, and what
//! cannot be routed safely is refused with an error naming table and column.

mod common;

use std::collections::BTreeMap;
use std::thread;

use common::{connect, Dbrouter, MariaDb, APP_DB, APP_PASSWORD, APP_USER};
use dbrouter::config::Config;
use dbrouter::route::schema::KeyType;
use dbrouter::route::topology::Topology;
use dbrouter::route::value::KeyValue;
use mysql::prelude::Queryable;

const SHARDS: usize = 4;
const USERS: i64 = 10_000;
/// Client threads writing through the proxy at once.
const WRITERS: i64 = 4;

const SCHEMA: &str = "\
CREATE TABLE users (userid BIGINT PRIMARY KEY, name VARCHAR(40) NOT NULL) ENGINE=InnoDB;\
CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, userid BIGINT NOT NULL, \
  amount INT NOT NULL, KEY (userid)) ENGINE=InnoDB;\
CREATE TABLE countries (code CHAR(2) PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB";

fn config(port: u16, shards: &[MariaDb]) -> String {
    let mut toml = format!(
        "[proxy]\nlisten = \"127.0.0.1:{port}\"\nreactors = 2\n\n\
         [backend_users]\nadmin_user = \"{}\"\nadmin_password = \"{}\"\n\n\
         [sharding]\nbuckets = 1024\ndefault_shard = 0\n\n\
         [[table]]\nname = \"users\"\nkey = \"userid\"\nkey_type = \"int\"\n\n\
         [[table]]\nname = \"orders\"\nkey = \"userid\"\nkey_type = \"int\"\n\n\
         [[table]]\nname = \"countries\"\nglobal = true\n",
        common::ADMIN_USER,
        common::ADMIN_PASSWORD
    );
    for (i, db) in shards.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[shard]]\nid = {i}\nmaster = \"{}\"\n",
            db.addr()
        ));
    }
    toml
}

/// The shard index a key must be on, computed by the library the proxy uses.
fn expected_shard(topology: &Topology, userid: i64) -> usize {
    topology
        .route_key(&KeyValue::Int(userid), KeyType::Int)
        .unwrap()
        .index
}

fn orders_of(userid: i64) -> i64 {
    userid % 3 + 1
}

struct Cluster {
    shards: Vec<MariaDb>,
    proxy: Dbrouter,
    topology: Topology,
}

fn cluster() -> Cluster {
    cluster_with("")
}

/// A cluster whose proxy has `extra` added to its `[proxy]` section.
fn cluster_with(extra: &str) -> Cluster {
    let shards: Vec<MariaDb> = (0..SHARDS).map(|_| MariaDb::start()).collect();
    for db in &shards {
        let mut c = db.app_conn();
        c.query_drop(SCHEMA).unwrap();
    }
    let toml = config(common::free_port(), &shards).replacen(
        "reactors = 2\n",
        &format!("reactors = 2\n{extra}"),
        1,
    );
    let proxy = Dbrouter::start(&toml);
    let topology = Topology::from_config(&Config::from_toml(&toml).unwrap());
    Cluster {
        shards,
        proxy,
        topology,
    }
}

#[test]
fn ten_thousand_users_land_on_their_shards_and_read_back() {
    let cluster = cluster();
    let port = cluster.proxy.port();

    // Writers through the proxy: text inserts, multi-row inserts, prepared
    // inserts, and transactions, over several connections.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            thread::spawn(move || {
                let mut c = connect(port, APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
                let insert_user = c.prep("INSERT INTO users (userid, name) VALUES (?, ?)").unwrap();
                for userid in (0..USERS).filter(|u| u % WRITERS == w) {
                    let name = format!("user-{userid}");
                    let rows: Vec<String> = (0..orders_of(userid))
                        .map(|n| format!("({userid}, {})", n * 10 + 1))
                        .collect();
                    let orders = format!(
                        "INSERT INTO orders (userid, amount) VALUES {}",
                        rows.join(", ")
                    );
                    match userid % 4 {
                        0 => {
                            c.exec_drop(&insert_user, (userid, &name)).unwrap();
                            c.query_drop(&orders).unwrap();
                        }
                        1 => {
                            c.query_drop(format!(
                                "INSERT INTO users (userid, name) VALUES ('{userid}', '{name}')"
                            ))
                            .unwrap();
                            c.query_drop(&orders).unwrap();
                        }
                        2 => {
                            // A transaction fixes its shard at its first
                            // statement; both rows commit together.
                            c.query_drop("BEGIN").unwrap();
                            c.query_drop(format!(
                                "INSERT INTO users SET userid = {userid}, name = '{name}'"
                            ))
                            .unwrap();
                            c.query_drop(&orders).unwrap();
                            c.query_drop("COMMIT").unwrap();
                        }
                        _ => {
                            c.query_drop(format!(
                                "BEGIN; INSERT INTO users (userid, name) VALUES ({userid}, '{name}'); \
                                 {orders}; COMMIT"
                            ))
                            .unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }

    // Every shard, read directly: each row is where its key maps to.
    let mut users_seen = 0;
    let mut orders_seen = 0;
    let mut misplaced = 0;
    let mut per_shard = Vec::new();
    for (index, db) in cluster.shards.iter().enumerate() {
        let mut c = db.app_conn();
        let users: Vec<i64> = c.query("SELECT userid FROM users").unwrap();
        let orders: Vec<i64> = c.query("SELECT userid FROM orders").unwrap();
        users_seen += users.len() as i64;
        orders_seen += orders.len() as i64;
        let wrong = users
            .iter()
            .chain(&orders)
            .filter(|u| expected_shard(&cluster.topology, **u) != index)
            .count();
        misplaced += wrong;
        per_shard.push((index, db.port(), users.len(), orders.len(), wrong));
    }
    eprintln!("per shard (index, port, users, orders, misplaced): {per_shard:?}");
    for (index, _, users, _, _) in &per_shard {
        assert!(
            *users > 0,
            "shard {index} got no users at all: {per_shard:?}"
        );
    }
    let expected_orders: i64 = (0..USERS).map(orders_of).sum();
    eprintln!(
        "users {users_seen}/{USERS}, orders {orders_seen}/{expected_orders}, rows on the wrong shard: {misplaced}"
    );
    assert_eq!(misplaced, 0, "rows on the wrong shard");
    assert_eq!(users_seen, USERS);
    assert_eq!(orders_seen, expected_orders);

    // Through the proxy: each key's reads return exactly its rows.
    let mut c = connect(port, APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
    let by_key = c
        .prep("SELECT COUNT(*), SUM(amount) FROM orders WHERE userid = ?")
        .unwrap();
    for userid in (0..USERS).step_by(7) {
        let name: Option<String> = c
            .query_first(format!("SELECT name FROM users WHERE userid = {userid}"))
            .unwrap();
        assert_eq!(name, Some(format!("user-{userid}")));
        let (count, sum): (i64, i64) = c.exec_first(&by_key, (userid,)).unwrap().unwrap();
        let n = orders_of(userid);
        assert_eq!(count, n, "orders of {userid}");
        assert_eq!(
            sum,
            (0..n).map(|k| k * 10 + 1).sum::<i64>(),
            "amounts of {userid}"
        );
    }
    // An IN list whose keys share a shard is one statement.
    let same_shard: Vec<i64> = (0..USERS)
        .filter(|u| expected_shard(&cluster.topology, *u) == 2)
        .take(5)
        .collect();
    let list = same_shard
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let count: i64 = c
        .query_first(format!(
            "SELECT COUNT(*) FROM users WHERE userid IN ({list})"
        ))
        .unwrap()
        .unwrap();
    assert_eq!(count, 5);
    cluster.proxy.log();
}

fn refusal(result: mysql::Result<()>) -> (u16, String) {
    match result {
        Err(mysql::Error::MySqlError(e)) => (e.code, e.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn what_cannot_be_routed_is_refused_and_the_session_lives_on() {
    let cluster = cluster();
    let t = &cluster.topology;
    let on = |shard: usize| (0..USERS).find(|u| expected_shard(t, *u) == shard).unwrap();
    let (a, b) = (on(1), on(3));
    let mut c = connect(cluster.proxy.port(), APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();

    let cases = [
        (
            "SELECT * FROM users".to_string(),
            "nothing binds key column `userid`",
        ),
        (
            format!("SELECT * FROM users WHERE userid = {a} OR 1 = 1"),
            "OR",
        ),
        (
            format!("SELECT * FROM users WHERE userid IN ({a}, {b})"),
            "different shards",
        ),
        (
            format!("UPDATE users SET userid = {b} WHERE userid = {a}"),
            "assigns key column",
        ),
        (
            format!("INSERT INTO users (userid, name) VALUES ({a}, 'x'), ({b}, 'y')"),
            "different shards",
        ),
        (
            format!(
                "SELECT * FROM users WHERE userid = {a}; SELECT * FROM users WHERE userid = {b}"
            ),
            "different shards",
        ),
        (
            "SELECT * FROM users WHERE userid = 1.5".to_string(),
            "userid",
        ),
        (
            "SELECT * FROM orders WHERE userid = (SELECT MAX(userid) FROM users)".to_string(),
            "userid",
        ),
    ];
    for (sql, words) in &cases {
        let (code, message) = refusal(c.query_drop(sql));
        assert_eq!(code, 1105, "{sql}: {message}");
        assert!(message.contains(words), "{sql}: {message}");
        assert!(
            message.contains("users") || message.contains("orders"),
            "{message}"
        );
        // The connection lives on.
        let one: i64 = c.query_first("SELECT 1").unwrap().unwrap();
        assert_eq!(one, 1);
    }

    // A transaction on one shard refuses a statement for another, and stays
    // usable.
    c.query_drop("BEGIN").unwrap();
    c.query_drop(format!(
        "INSERT INTO users (userid, name) VALUES ({a}, 'a')"
    ))
    .unwrap();
    let (code, message) = refusal(c.query_drop(format!(
        "INSERT INTO users (userid, name) VALUES ({b}, 'b')"
    )));
    assert_eq!(code, 1105);
    assert!(message.contains("transaction"), "{message}");
    c.query_drop(format!(
        "INSERT INTO orders (userid, amount) VALUES ({a}, 7)"
    ))
    .unwrap();
    c.query_drop("COMMIT").unwrap();
    let n: i64 = c
        .query_first(format!("SELECT COUNT(*) FROM orders WHERE userid = {a}"))
        .unwrap()
        .unwrap();
    assert_eq!(n, 1);

    // A rolled-back transaction leaves nothing on its shard.
    c.query_drop("START TRANSACTION").unwrap();
    c.query_drop(format!(
        "INSERT INTO orders (userid, amount) VALUES ({b}, 9)"
    ))
    .unwrap();
    c.query_drop("ROLLBACK").unwrap();
    let direct: i64 = cluster.shards[3]
        .app_conn()
        .query_first(format!("SELECT COUNT(*) FROM orders WHERE userid = {b}"))
        .unwrap()
        .unwrap();
    assert_eq!(direct, 0);
}

#[test]
fn session_state_follows_the_client_to_every_shard() {
    let cluster = cluster();
    let t = &cluster.topology;
    let keys: Vec<i64> = (0..SHARDS)
        .map(|s| (0..USERS).find(|u| expected_shard(t, *u) == s).unwrap())
        .collect();
    let mut c = connect(cluster.proxy.port(), APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
    for k in &keys {
        c.query_drop(format!(
            "INSERT INTO users (userid, name) VALUES ({k}, 'n{k}')"
        ))
        .unwrap();
    }
    // ROW_COUNT() and FOUND_ROWS() are those of the client's last
    // statement, though it ran on another shard than the one reading them
    // (another key's shard).
    let _: Vec<String> = c
        .query(format!("SELECT name FROM users WHERE userid = {}", keys[0]))
        .unwrap();
    c.query_drop(format!(
        "UPDATE users SET name = 'renamed' WHERE userid = {}",
        keys[3]
    ))
    .unwrap();
    assert_eq!(c.affected_rows(), 1);
    let row_count: Option<(i64, String)> = c
        .query_first(format!(
            "SELECT ROW_COUNT(), name FROM users WHERE userid = {}",
            keys[0]
        ))
        .unwrap();
    assert_eq!(row_count, Some((1, format!("n{}", keys[0]))));
    let names: Vec<String> = c
        .query(format!("SELECT name FROM users WHERE userid = {}", keys[2]))
        .unwrap();
    c.query_drop(format!(
        "DELETE FROM users WHERE userid = {} AND name = 'nobody'",
        keys[1]
    ))
    .unwrap();
    let counters: Option<(u64, i64, String)> = c
        .query_first(format!(
            "SELECT FOUND_ROWS(), ROW_COUNT(), name FROM users WHERE userid = {}",
            keys[0]
        ))
        .unwrap();
    assert_eq!(
        counters,
        Some((names.len() as u64, 0, format!("n{}", keys[0])))
    );

    // Set on one backend, seen on every shard, including ones opened later.
    c.query_drop("SET @tag = 'mine', SESSION sql_mode = 'ANSI_QUOTES'")
        .unwrap();
    let mut seen = BTreeMap::new();
    for k in &keys {
        let row: (String, String) = c
            .query_first(format!(
                "SELECT @tag, @@sql_mode FROM users WHERE userid = {k}"
            ))
            .unwrap()
            .unwrap();
        seen.insert(*k, row);
    }
    for (k, (tag, mode)) in &seen {
        assert_eq!(tag, "mine", "key {k}");
        assert_eq!(mode, "ANSI_QUOTES", "key {k}");
    }
    // Under ANSI_QUOTES a double-quoted name is an identifier: the scanner
    // follows the session's sql_mode and still finds the key.
    let name: Option<String> = c
        .query_first(format!(
            "SELECT \"name\" FROM users WHERE \"userid\" = {}",
            keys[2]
        ))
        .unwrap();
    assert_eq!(name, Some(format!("n{}", keys[2])));
    // Global tables live on the designated shard.
    c.query_drop("INSERT INTO countries VALUES ('FR', 'France')")
        .unwrap();
    let direct: i64 = cluster.shards[0]
        .app_conn()
        .query_first("SELECT COUNT(*) FROM countries")
        .unwrap()
        .unwrap();
    assert_eq!(direct, 1);

    // The client says goodbye (COM_QUIT): every shard it used hears it, so
    // none counts an aborted connection.
    drop(c);
    std::thread::sleep(std::time::Duration::from_millis(500));
    for (index, db) in cluster.shards.iter().enumerate() {
        let aborted: Option<(String, u64)> = db
            .root_conn()
            .query_first("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")
            .unwrap();
        assert_eq!(aborted.map(|(_, n)| n), Some(0), "shard {index}");
    }
}

#[test]
fn transaction_mode_routes_and_keeps_session_state_on_every_shard() {
    let cluster = cluster_with("pool_mode = \"transaction\"\n");
    let t = &cluster.topology;
    let keys: Vec<i64> = (0..SHARDS)
        .map(|s| (0..USERS).find(|u| expected_shard(t, *u) == s).unwrap())
        .collect();
    let port = cluster.proxy.port();
    let workers: Vec<_> = (0..8i64)
        .map(|w| {
            let keys = keys.clone();
            std::thread::spawn(move || {
                let mut c = connect(port, APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
                let mode = if w % 2 == 0 { "ANSI_QUOTES" } else { "NO_BACKSLASH_ESCAPES" };
                c.query_drop(format!("SET SESSION sql_mode = '{mode}'")).unwrap();
                for k in &keys {
                    // The amount tells the workers' orders apart.
                    let amount = k + 1_000_000 * (w + 1);
                    c.query_drop(format!(
                        "INSERT INTO orders (userid, amount) VALUES ({k}, {amount})"
                    ))
                    .unwrap();
                    // Routed to k's shard, on whichever pooled connection:
                    // the client's sql_mode is there.
                    let (seen, _): (String, i64) = c
                        .query_first(format!(
                            "SELECT @@sql_mode, COUNT(*) FROM orders WHERE userid = {k}"
                        ))
                        .unwrap()
                        .unwrap();
                    assert_eq!(seen, mode, "worker {w}, key {k}");
                    // A transaction stays on its shard's connection.
                    c.query_drop("BEGIN").unwrap();
                    c.query_drop(format!(
                        "UPDATE orders SET amount = amount + 1 WHERE userid = {k} AND amount = {amount}"
                    ))
                    .unwrap();
                    let n: i64 = c
                        .query_first(format!(
                            "SELECT COUNT(*) FROM orders WHERE userid = {k} AND amount = {}",
                            amount + 1
                        ))
                        .unwrap()
                        .unwrap();
                    assert_eq!(n, 1, "worker {w} sees its update in its transaction");
                    c.query_drop("COMMIT").unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker failed");
    }
    // Every order is on its key's shard.
    for (s, db) in cluster.shards.iter().enumerate() {
        let n: i64 = db
            .app_conn()
            .query_first(format!(
                "SELECT COUNT(*) FROM orders WHERE userid = {}",
                keys[s]
            ))
            .unwrap()
            .unwrap();
        assert_eq!(n, 8, "shard {s} holds the 8 workers' orders of its key");
    }
}
