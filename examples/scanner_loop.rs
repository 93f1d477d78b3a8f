//! A loop for profilers (`valgrind --tool=callgrind`, `perf`): scans a point
//! select, or the statement in the file `PERF_SQL_FILE`, `PERF_N` times.
//! (benches/scanner.rs builds the 64 KB INSERT; write one to a file to
//! profile it here.)
//!
//! `cargo build --release --example scanner_loop && valgrind --tool=callgrind target/release/examples/scanner_loop`

use dbrouter::route::scanner::{analyze, ScanOptions};
use dbrouter::route::schema::{KeyType, MissingKey, Schema, TableRule};

fn main() {
    let sharded = |key: &str| TableRule::Sharded {
        key: key.into(),
        key_type: KeyType::Int,
        missing_key: MissingKey::Error,
    };
    let schema = Schema::new()
        .with_table("users", sharded("userid"))
        .with_table("orders", sharded("userid"));
    let opts = ScanOptions::new(101119);
    let sql = match std::env::var("PERF_SQL_FILE") {
        Ok(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        Err(_) => b"SELECT `users`.`userid`, `users`.`name`, `users`.`email` FROM `users` WHERE `users`.`userid` = 42".to_vec(),
    };
    let n: usize = std::env::var("PERF_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let routed = (0..n)
        .filter(|_| analyze(std::hint::black_box(&sql), &schema, &opts).is_ok())
        .count();
    println!("{n} scans, {routed} routed");
}
