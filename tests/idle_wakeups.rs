//! An idle proxy sleeps: with nothing to do, none of its threads wakes up.
//! On a shared machine a thread that wakes ten times a second for nothing
//! costs every other process there a little, and it shows in `perf sched`
//! as the one busy thread of an idle proxy.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use mysql::prelude::Queryable;

/// How long the proxy is watched doing nothing.
const WATCH: Duration = Duration::from_secs(3);
/// Wake-ups a thread may have in `WATCH` without being a poller: the odd
/// scheduler event, never a timer's beat.
const MAX_SWITCHES: u64 = 3;

/// Context switches (voluntary and not) of each thread of `pid`, by thread
/// id, with the thread's name.
fn switches_per_thread(pid: u32) -> BTreeMap<u32, (String, u64)> {
    let mut threads = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let tid: u32 = task.file_name().unwrap().to_str().unwrap().parse().unwrap();
        let (Ok(name), Ok(status)) = (
            std::fs::read_to_string(task.join("comm")),
            std::fs::read_to_string(task.join("status")),
        ) else {
            continue; // the thread ended meanwhile
        };
        let switches = status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .map(|l| l.split_whitespace().last().unwrap().parse::<u64>().unwrap())
            .sum();
        threads.insert(tid, (name.trim().to_string(), switches));
    }
    threads
}

/// Regression: the accounts thread (`dbrouter-accounts`) woke every 100 ms
/// to look at its stop flag, though it reads the backend's accounts only
/// every 30 s: 30 context switches in this test's 3 s before the fix, and
/// about 65 a second in `perf sched` with the machine loaded.
#[test]
fn an_idle_proxy_does_not_wake() {
    let db = MariaDb::start();
    // Every thread the proxy can have: reactors, accounts, admin.
    let proxy = Dbrouter::start(&standard_config(&db).admin().build());
    // A client that logged in, ran a statement and now waits: its session
    // and backend connection are idle too.
    let mut conn = connect(proxy.port(), APP_USER, APP_PASSWORD, Some(APP_DB)).unwrap();
    let one: Option<u32> = conn.query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
    // Whatever start-up and the login left to finish.
    std::thread::sleep(Duration::from_millis(500));

    let before = switches_per_thread(proxy.pid());
    std::thread::sleep(WATCH);
    let after = switches_per_thread(proxy.pid());

    let names: Vec<&str> = after.values().map(|(name, _)| name.as_str()).collect();
    for thread in ["dbrouter-reacto", "dbrouter-accoun", "dbrouter-admin"] {
        assert!(
            names.iter().any(|n| n.starts_with(thread)),
            "no {thread} thread among {names:?}: the test would not see it"
        );
    }
    let busy: Vec<String> = after
        .iter()
        .filter_map(|(tid, (name, now))| {
            let then = before.get(tid).map_or(0, |(_, n)| *n);
            (now - then > MAX_SWITCHES).then(|| format!("{name} ({tid}): {} switches", now - then))
        })
        .collect();
    assert!(
        busy.is_empty(),
        "threads woke up in {WATCH:?} of idleness: {busy:?}"
    );

    // The client is still served.
    let two: Option<u32> = conn.query_first("SELECT 2").unwrap();
    assert_eq!(two, Some(2));
}
