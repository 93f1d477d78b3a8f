//! A loop for profilers (`valgrind --tool=callgrind`, `perf`): scans a point
//! select, or (`PERF_WHICH=insert`) a 64 KB multi-row INSERT, or
//! (`PERF_WHICH=sql PERF_SQL=...`) any statement, `PERF_N` times.
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
    let s = Schema::new()
        .with_table("users", sharded("userid"))
        .with_table("orders", sharded("userid"));
    let opts = ScanOptions::new(101119);
    let point: &[u8] = b"SELECT `users`.`userid`, `users`.`name`, `users`.`email` FROM `users` WHERE `users`.`userid` = 42";
    let n: usize = std::env::var("PERF_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let which = std::env::var("PERF_WHICH").unwrap_or_default();
    let mut insert =
        b"INSERT INTO orders (userid, id, status, note, total, created_at) VALUES ".to_vec();
    let mut i = 0u64;
    while insert.len() < 64 * 1024 - 100 {
        if i > 0 {
            insert.push(b',');
        }
        insert.extend_from_slice(
            format!(
                "({}, {}, 'paid', 'gift wrap, leave at door #{}', {}.{:02}, '2026-11-21 10:{:02}:00')",
                42 + i % 3,
                1_000_000 + i,
                i % 97,
                i % 500,
                i % 100,
                i % 60
            )
            .as_bytes(),
        );
        i += 1;
    }
    let custom = std::env::var("PERF_SQL").unwrap_or_default();
    let sql: &[u8] = match which.as_str() {
        "insert" => &insert,
        "sql" => custom.as_bytes(),
        _ => point,
    };
    let mut routed = 0usize;
    for _ in 0..n {
        if analyze(std::hint::black_box(sql), &s, &opts).is_ok() {
            routed += 1;
        }
    }
    println!("{n} scans, {routed} routed");
}
