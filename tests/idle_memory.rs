//! Idle clients cost little memory (issue 4: at most 16 KiB resident per idle
//! connection): a session waiting for its client's next command holds no
//! buffer storage, however much of its buffers its last command used.
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
