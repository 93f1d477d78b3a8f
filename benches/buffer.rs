//! What releasing a session's buffers between commands costs per command:
//! the buffers give their storage back when idle and take it again at the
//! next command. Run with `cargo bench --bench buffer -- --quick`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use dbrouter::reactor::Buffer;

const CAPACITY: usize = 64 * 1024; // proxy.buffer_size's default
const COMMAND: &[u8] = b"\x2c\x00\x00\x00\x03SELECT c FROM sbtest1 WHERE id = 4242";

fn buffer(c: &mut Criterion) {
    let mut g = c.benchmark_group("buffer per command");

    // Before: the storage is kept for the session's life.
    g.bench_function("kept storage", |b| {
        let mut buf = Buffer::new(CAPACITY);
        b.iter(|| {
            buf.push(black_box(COMMAND));
            buf.consume(buf.len());
        })
    });

    // Now: given back when idle, taken from this thread's spare blocks.
    g.bench_function("released when idle, spare block", |b| {
        let mut buf = Buffer::new(CAPACITY);
        b.iter(|| {
            buf.push(black_box(COMMAND));
            buf.consume(buf.len());
            buf.release_if_empty();
        })
    });

    // Without a spare list: a zeroed 64 KiB allocation per command.
    g.bench_function("fresh zeroed 64 KiB allocation", |b| {
        b.iter(|| black_box(vec![0u8; CAPACITY]))
    });
    g.finish();
}

criterion_group!(benches, buffer);
criterion_main!(benches);
