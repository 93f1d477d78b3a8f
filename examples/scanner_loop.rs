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

use dbrouter::route::router::route_query;
use dbrouter::route::scanner::{analyze, ScanOptions};

#[path = "../benches/shared/scanner_inputs.rs"]
mod inputs;

use inputs::{topology, POINT};

fn main() {
    let topology = topology();
    let schema = &topology.schema;
    let opts = ScanOptions::new(101119);
    let sql = match std::env::var("PERF_SQL_FILE") {
        Ok(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        Err(_) => POINT.to_vec(),
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
