//! Idle clients cost little memory (issue 4: at most 16 KiB resident per idle
//! connection): a session waiting for its client's next command holds no
//! buffer storage, however much of its buffers its last command used; nor
//! does one waiting for its backend's reply.
//! `perf/idle_connections.sh` measures the figure at 10,000 connections.

mod common;

use common::*;
use mysql::prelude::Queryable;

const CLIENTS: u64 = 200;
/// Close to `buffer_size` (64 KiB): each command fills most of `front_in`
/// and its reply most of `front_out`, so every page of both is touched.
const LITERAL: usize = 60_000;

/// Regression: each session kept its two 64 KiB buffers for its whole life,
/// so idle clients that had once sent or received that much cost over
/// 128 KiB each (measured before the fix: 141 KiB per connection here, 2 KiB after).
#[test]
fn idle_sessions_give_their_buffers_back() {
    let db = MariaDb::start_with(&["--max-connections=400"]);
    let proxy = proxy_for(&db);
    let pid = proxy.pid();
    let literal = "x".repeat(LITERAL);
    let query = format!("SELECT '{literal}'");
    let big_command = |conn: &mut mysql::Conn| {
        let echoed: Option<String> = conn.query_first(&query).unwrap();
        assert_eq!(echoed.as_deref(), Some(literal.as_str()));
    };

    // Baseline once one such session has come and gone (the allocator and
    // the reactors' spare blocks have what one session needs).
    let mut warm = connect(proxy.port(), APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
    big_command(&mut warm);
    drop(warm);
    let baseline = rss_kib(pid).unwrap();

    let mut idle = Vec::new();
    for _ in 0..CLIENTS {
        let mut conn = connect(proxy.port(), APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
        big_command(&mut conn);
        idle.push(conn);
    }
    let after = rss_kib(pid).unwrap();
    let per_client = after.saturating_sub(baseline) / CLIENTS;
    eprintln!(
        "dbrouter RSS {baseline} KiB -> {after} KiB with {CLIENTS} idle clients: \
         {per_client} KiB each"
    );
    assert!(
        per_client < 32,
        "{per_client} KiB resident per idle client (RSS {baseline} -> {after} KiB): \
         idle sessions keep buffer memory"
    );

    // And they are still sessions: each answers its next command.
    for conn in &mut idle {
        big_command(conn);
    }
}

/// Regression: a session kept the block its command came in (64 KiB, each
/// page touched by a big command) until the reply's last byte, so clients
/// waiting for slow statements cost a whole buffer each though the command
/// had long gone to the backend. Now every buffer gives its storage back as
/// soon as it is empty, as HAProxy's channels do.
#[test]
fn sessions_waiting_for_their_backend_hold_no_buffer() {
    let db = MariaDb::start_with(&["--max-connections=400"]);
    let proxy = proxy_for(&db);
    let pid = proxy.pid();
    let literal = "x".repeat(LITERAL);
    // The command fills most of `front_in`; the reply comes SLEEP_S later.
    const SLEEP_S: u64 = 3;
    let query = format!("SELECT SLEEP({SLEEP_S}), '{literal}'");

    let mut conns: Vec<mysql::Conn> = (0..CLIENTS)
        .map(|_| connect(proxy.port(), APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap())
        .collect();
    // As in the test above: one big command's worth of blocks is baseline.
    let warm = format!("SELECT '{literal}'");
    let _: Option<String> = conns[0].query_first(&warm).unwrap();
    let baseline = rss_kib(pid).unwrap();

    let start = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS as usize + 1));
    let waiting: Vec<_> = conns
        .drain(..)
        .map(|mut conn| {
            let (start, query) = (start.clone(), query.clone());
            std::thread::spawn(move || {
                start.wait();
                let row: Option<(u32, String)> = conn.query_first(&query).unwrap();
                row.unwrap().1.len()
            })
        })
        .collect();
    start.wait();
    // Every command is at the server by now, and no reply has come back.
    std::thread::sleep(std::time::Duration::from_millis(SLEEP_S * 1000 / 2));
    let during = rss_kib(pid).unwrap();
    for handle in waiting {
        assert_eq!(handle.join().unwrap(), LITERAL, "the reply came back whole");
    }

    let per_client = during.saturating_sub(baseline) / CLIENTS;
    eprintln!(
        "dbrouter RSS {baseline} KiB -> {during} KiB with {CLIENTS} clients waiting \
         for their backend: {per_client} KiB each"
    );
    assert!(
        per_client < 32,
        "{per_client} KiB resident per client waiting for its backend (RSS {baseline} -> \
         {during} KiB): sessions keep their command's buffer"
    );
}
