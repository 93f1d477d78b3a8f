//! Reply tracker throughput over a 10,000-row text result set shaped like
//! the ones captured from MariaDB 10.11 (`src/protocol/testdata/mariadb/`).
//! Run with `cargo bench --bench reply -- --quick`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dbrouter::protocol::consts::caps::{CLIENT_DEPRECATE_EOF, PROXY_SUPPORTED};
use dbrouter::protocol::consts::status::SERVER_STATUS_AUTOCOMMIT;
use dbrouter::protocol::frame::write_packet;
use dbrouter::protocol::packet::{write_result_end, write_text_row, ColumnDefinition};
use dbrouter::protocol::reply::{Expect, ReplyState, ReplyTracker};

/// `SELECT id, userid, name, email, created FROM accounts` with 10,000 rows.
fn result_set(deprecate_eof: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut seq = write_packet(&mut out, 1, &[5]);
    for name in ["id", "userid", "name", "email", "created"] {
        let mut p = Vec::new();
        ColumnDefinition {
            schema: b"shop",
            table: b"accounts",
            org_table: b"accounts",
            name: name.as_bytes(),
            org_name: name.as_bytes(),
            charset: 45,
            length: 255,
            column_type: 0xfd,
            flags: 0,
            decimals: 0,
        }
        .write(&mut p);
        seq = write_packet(&mut out, seq, &p);
    }
    if !deprecate_eof {
        seq = write_result_end(&mut out, seq, false, SERVER_STATUS_AUTOCOMMIT, 0);
    }
    let mut p = Vec::new();
    for i in 0..10_000u32 {
        let (id, user) = (i.to_string(), (i * 7919 % 100_000).to_string());
        let name = format!("customer number {i}");
        let email = format!("customer{i}@example.com");
        p.clear();
        write_text_row(
            &mut p,
            &[
                Some(id.as_bytes()),
                Some(user.as_bytes()),
                Some(name.as_bytes()),
                (i % 5 != 0).then_some(email.as_bytes()),
                Some(b"2026-11-21 10:00:00"),
            ],
        );
        seq = write_packet(&mut out, seq, &p);
    }
    write_result_end(&mut out, seq, deprecate_eof, SERVER_STATUS_AUTOCOMMIT, 0);
    out
}

fn reply(c: &mut Criterion) {
    let mut g = c.benchmark_group("reply");
    for deprecate_eof in [false, true] {
        let buf = result_set(deprecate_eof);
        let caps = if deprecate_eof {
            PROXY_SUPPORTED
        } else {
            PROXY_SUPPORTED & !CLIENT_DEPRECATE_EOF
        };
        let tag = if deprecate_eof {
            "deprecate_eof"
        } else {
            "eof"
        };
        g.throughput(Throughput::Bytes(buf.len() as u64));

        g.bench_function(format!("10k rows one piece ({tag})"), |b| {
            b.iter(|| {
                let mut t = ReplyTracker::new(Expect::Query, caps);
                let s = t.scan(black_box(&buf)).unwrap();
                assert!(matches!(s.state, ReplyState::Done { .. }));
                black_box(s.forwardable)
            })
        });

        // 16 KiB socket reads, keeping the unscanned rest like the reactor.
        g.bench_function(format!("10k rows 16KiB reads ({tag})"), |b| {
            b.iter(|| {
                let mut t = ReplyTracker::new(Expect::Query, caps);
                let (mut start, mut end) = (0, 0);
                loop {
                    end = (end + 16 * 1024).min(buf.len());
                    let s = t.scan(&buf[start..end]).unwrap();
                    start += s.forwardable;
                    if s.state != ReplyState::InProgress {
                        break;
                    }
                }
                black_box(start)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, reply);
criterion_main!(benches);
