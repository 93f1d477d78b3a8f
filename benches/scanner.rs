//! Shard-key extraction: a typical point select (target <= 100 ns) and a
//! 64 KB multi-row INSERT (target >= 1 GB/s). Run with
//! `cargo bench --bench scanner -- --quick`. "route_query point select" is
//! what a COM_QUERY pays in all: the multi-statement split, the scan, the
//! key's hash and the shard map.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dbrouter::route::router::{route_query, Decision};
use dbrouter::route::scanner::{analyze, split_statements, ScanOptions, Target};
use dbrouter::route::schema::Schema;

#[path = "shared/scanner_inputs.rs"]
mod inputs;

use inputs::{topology, POINT};

const OPTS: ScanOptions = ScanOptions::new(101119);

/// A 64 KB INSERT of order rows: the key, a number, strings, a date.
fn big_insert() -> Vec<u8> {
    let mut sql =
        b"INSERT INTO orders (userid, id, status, note, total, created_at) VALUES ".to_vec();
    let mut i = 0u64;
    while sql.len() < 64 * 1024 - 100 {
        if i > 0 {
            sql.push(b',');
        }
        sql.extend_from_slice(
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
    sql
}

fn keys(sql: &[u8], schema: &Schema) -> usize {
    match analyze(sql, schema, &OPTS) {
        Ok(a) => match a.target {
            Target::Keys { values, .. } => values.len(),
            Target::Unsharded => 0,
        },
        Err(_) => usize::MAX,
    }
}

fn scanner(c: &mut Criterion) {
    let topology = topology();
    let schema = &topology.schema;
    assert_eq!(keys(POINT, schema), 1);
    let insert = big_insert();
    assert!(keys(&insert, schema) > 500);

    let mut g = c.benchmark_group("scanner");
    g.throughput(Throughput::Bytes(POINT.len() as u64));
    g.bench_function("point select", |b| {
        b.iter(|| keys(black_box(POINT), schema))
    });
    // crc32("42") % 1024 = 136: shard 0 holds buckets 0-511.
    assert_eq!(
        route_query(POINT, &topology, &OPTS).map(|r| r.decision),
        Ok(Decision::Shard(0))
    );
    g.bench_function("route_query point select", |b| {
        b.iter(|| route_query(black_box(POINT), &topology, &OPTS).map(|r| r.decision))
    });
    let hibernate: &[u8] = b"select u1_0.userid,u1_0.name from users u1_0 where u1_0.userid=?";
    g.throughput(Throughput::Bytes(hibernate.len() as u64));
    g.bench_function("prepared point select", |b| {
        b.iter(|| keys(black_box(hibernate), schema))
    });
    g.throughput(Throughput::Bytes(insert.len() as u64));
    g.bench_function("64 KB multi-row insert", |b| {
        b.iter(|| keys(black_box(&insert), schema))
    });
    g.bench_function("64 KB split_statements", |b| {
        b.iter(|| split_statements(black_box(&insert), &OPTS).len())
    });
    g.finish();
}

criterion_group!(benches, scanner);
criterion_main!(benches);
