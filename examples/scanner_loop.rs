//! A loop for profilers (`valgrind --tool=callgrind`, `perf`): scans a point
//! select, or the statement in the file `PERF_SQL_FILE`, `PERF_N` times.
//! With `PERF_ROUTE=1` each iteration is a whole `route_query` (what a
//! COM_QUERY pays: split, scan, hash, shard map) instead of `analyze` alone.
//! (benches/scanner.rs builds the 64 KB INSERT; write one to a file to
//! profile it here.)
//!
//! `cargo build --release --example scanner_loop && valgrind --tool=callgrind target/release/examples/scanner_loop`
//!
//! Instructions per statement: run with two values of `PERF_N` and divide
//! the difference of the totals by the difference of the counts (that
//! removes start-up and schema building).

use dbrouter::config::Config;
use dbrouter::route::router::route_query;
use dbrouter::route::scanner::{analyze, ScanOptions};
use dbrouter::route::topology::Topology;

fn main() {
    let config = Config::from_toml(
        r#"
        [proxy]
        listen = "127.0.0.1:6033"
        [[user]]
        name = "app"
        password_hash = ""
        [[shard]]
        id = 0
        master = "127.0.0.1:3306"
        [[shard]]
        id = 1
        master = "127.0.0.1:3316"
        [sharding]
        buckets = 1024
        [[table]]
        name = "users"
        key = "userid"
        key_type = "int"
        [[table]]
        name = "orders"
        key = "userid"
        key_type = "int"
        "#,
    )
    .expect("the example's configuration parses");
    let topology = Topology::from_config(&config);
    let schema = &topology.schema;
    let opts = ScanOptions::new(101119);
    let sql = match std::env::var("PERF_SQL_FILE") {
        Ok(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        Err(_) => b"SELECT `users`.`userid`, `users`.`name`, `users`.`email` FROM `users` WHERE `users`.`userid` = 42".to_vec(),
    };
    let n: usize = std::env::var("PERF_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let route = std::env::var("PERF_ROUTE").is_ok_and(|v| v == "1");
    let routed = (0..n)
        .filter(|_| {
            let sql = std::hint::black_box(&sql);
            if route {
                route_query(sql, &topology, &opts).is_ok()
            } else {
                analyze(sql, schema, &opts).is_ok()
            }
        })
        .count();
    println!("{n} scans, {routed} routed");
}
