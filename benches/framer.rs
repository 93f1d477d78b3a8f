//! Framing throughput: walking headers, relaying client packets, writing
//! packets. Run with `cargo bench --bench framer -- --quick`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dbrouter::protocol::frame::{parse_header, write_packet, PacketRelay, HEADER_LEN};

/// 10,000 COM_QUERY-sized packets of 20 to 400 bytes, like a busy session.
fn stream() -> Vec<u8> {
    let mut out = Vec::new();
    let mut payload = b"\x03SELECT id, name FROM users WHERE userid = 42".to_vec();
    for i in 0..10_000usize {
        payload.resize(20 + (i * 37) % 380, b'x');
        write_packet(&mut out, 0, &payload);
    }
    out
}

fn framer(c: &mut Criterion) {
    let buf = stream();
    let mut g = c.benchmark_group("framer");
    g.throughput(Throughput::Bytes(buf.len() as u64));

    g.bench_function("parse_header walk", |b| {
        b.iter(|| {
            let (mut at, mut n) = (0, 0);
            while let Some(h) = parse_header(&buf[at..]) {
                at += HEADER_LEN + h.len;
                n += 1;
            }
            black_box(n)
        })
    });

    g.bench_function("PacketRelay per packet", |b| {
        b.iter(|| {
            let mut at = 0;
            while at < buf.len() {
                let mut relay = PacketRelay::new(0, 1 << 24);
                let s = relay.scan(&buf[at..]).unwrap();
                debug_assert!(s.done);
                at += s.forwardable;
            }
            black_box(at)
        })
    });

    // The same stream read in 16 KiB socket reads, keeping the unscanned rest.
    g.bench_function("PacketRelay 16KiB reads", |b| {
        b.iter(|| {
            let (mut start, mut end) = (0, 0);
            let mut relay = PacketRelay::new(0, 1 << 24);
            while start < buf.len() {
                end = (end + 16 * 1024).min(buf.len());
                loop {
                    let s = relay.scan(&buf[start..end]).unwrap();
                    start += s.forwardable;
                    if !s.done {
                        break;
                    }
                    relay = PacketRelay::new(0, 1 << 24);
                }
            }
            black_box(start)
        })
    });

    let payload = vec![b'r'; 200];
    g.throughput(Throughput::Bytes(
        10_000 * (HEADER_LEN + payload.len()) as u64,
    ));
    g.bench_function("write_packet 200B x10000", |b| {
        let mut out = Vec::with_capacity(10_000 * 204);
        b.iter(|| {
            out.clear();
            for _ in 0..10_000 {
                write_packet(&mut out, 1, black_box(&payload));
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, framer);
criterion_main!(benches);
