//! A client that does not read (TESTING.md B8): the proxy's memory stays
//! bounded while the backend keeps the rest of the result, other clients
//! are served meanwhile, and everything arrives once the client reads.

mod common;

use std::time::{Duration, Instant};

use common::raw::{self, RawClient};
use common::*;

const ROWS: u64 = 200;
const ROW_BYTES: u64 = 1_000_000;

/// Sends a query returning ~200 MB and does not read for a while; returns
/// the raw client and the query start.
fn stall(port: u16) -> RawClient {
    let mut c = RawClient::login_to(port, APP_USER, APP_PASSWORD, Some(APP_DB));
    // A small receive window so that the kernel buffers little of it.
    socket2::SockRef::from(&c.stream)
        .set_recv_buffer_size(64 * 1024)
        .unwrap();
    c.seq = 0;
    let mut q = vec![raw::COM_QUERY];
    q.extend_from_slice(format!("SELECT REPEAT('x', {ROW_BYTES}) FROM seq_1_to_{ROWS}").as_bytes());
    c.write_packet(&q).unwrap();
    c
}

/// Reads the whole result as it streams, checking every row; returns the
/// number of value bytes.
fn drain(c: &mut RawClient) -> u64 {
    c.stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let (_, count) = c.read_packet().unwrap();
    assert_eq!(count, vec![1], "column count");
    let (_, _column) = c.read_packet().unwrap();
    let (_, eof) = c.read_packet().unwrap();
    assert_eq!(eof.first(), Some(&0xfe));
    let xs = vec![b'x'; ROW_BYTES as usize];
    let mut total = 0u64;
    let mut rows = 0u64;
    loop {
        let (_, p) = c.read_packet().unwrap();
        if p.first() == Some(&0xfe) && p.len() < 9 {
            break;
        }
        assert_ne!(p.first(), Some(&0xff), "{:?}", raw::ErrPacket::parse(&p));
        let (len, n) = raw::lenenc_int(&p).unwrap();
        assert_eq!(len, ROW_BYTES);
        assert_eq!(p.len() as u64, n as u64 + len);
        // Slice equality is a memcmp, fast even in a debug build.
        assert!(p[n..] == xs[..], "row {rows} is not all 'x'");
        total += len;
        rows += 1;
    }
    assert_eq!(rows, ROWS);
    total
}

#[test]
fn client_that_does_not_read_keeps_proxy_memory_bounded() {
    let db = MariaDb::start();
    // Direct: the same query and byte count from the server itself.
    let mut direct = stall(db.port());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(drain(&mut direct), ROWS * ROW_BYTES);

    let mut proxy = proxy_for(&db);
    let pid = proxy.pid();
    // Baseline after a first session has come and gone.
    let mut warm = RawClient::login_to(proxy.port(), APP_USER, APP_PASSWORD, Some(APP_DB));
    assert_eq!(warm.query("SELECT 1").unwrap().rows_text(), vec![vec!["1"]]);
    drop(warm);
    std::thread::sleep(Duration::from_millis(300));
    let baseline = rss_kib(pid).unwrap();

    let mut slow = stall(proxy.port());
    let mut peak = baseline;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        peak = peak.max(rss_kib(pid).unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Another client is served while the slow one stalls.
    let started = Instant::now();
    let mut other = RawClient::login_to(proxy.port(), APP_USER, APP_PASSWORD, Some(APP_DB));
    assert_eq!(
        other.query("SELECT 'other'").unwrap().rows_text(),
        vec![vec!["other"]]
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    peak = peak.max(rss_kib(pid).unwrap());
    proxy.assert_alive();
    assert!(
        peak < baseline + 50 * 1024,
        "proxy RSS grew from {baseline} KiB to {peak} KiB while the client did not read"
    );

    assert_eq!(drain(&mut slow), ROWS * ROW_BYTES);
    assert_eq!(
        slow.query("SELECT 'after'").unwrap().rows_text(),
        vec![vec!["after"]]
    );
    eprintln!("proxy RSS baseline {baseline} KiB, peak while stalled {peak} KiB");
}
