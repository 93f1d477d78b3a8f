//! Bad client input over a raw socket (TESTING.md B1, B2, B3, B5): each
//! case gets the server's answer (checked against the server itself first),
//! the proxy never crashes or hangs, and a fresh client is served after
//! every case.

mod common;

use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::raw::*;
use common::*;

/// Handshake timeout for both: the server's `--connect-timeout=2` and the
/// proxy's `handshake_timeout_ms`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// The server's and the proxy's max_allowed_packet in these tests.
const MAX_PACKET: usize = 1024 * 1024;

/// The server for the direct half: small packets, short handshakes.
fn server() -> MariaDb {
    MariaDb::start_with(&["--connect-timeout=2", "--max-allowed-packet=1M"])
}

/// The proxy with the same limits, in front of a normal server (64 MiB
/// packets): whatever the proxy lets through, the backend would accept.
fn proxy(backend: &MariaDb) -> Dbrouter {
    Dbrouter::start(
        &standard_config(backend)
            .set("max_allowed_packet", &MAX_PACKET.to_string())
            .set("handshake_timeout_ms", "2000")
            .build(),
    )
}

/// Where a case runs; for the proxy, its liveness is checked after.
struct Side<'a> {
    name: &'static str,
    port: u16,
    proxy: Option<&'a mut Dbrouter>,
}

impl Side<'_> {
    /// The target still serves a fresh client.
    fn still_serves(&mut self, case: &str) {
        if let Some(p) = self.proxy.as_deref_mut() {
            p.assert_alive();
        }
        let mut c = RawClient::connect(self.port)
            .unwrap_or_else(|e| panic!("{} after {case}: connect: {e}", self.name));
        c.login(APP_USER, APP_PASSWORD, Some(APP_DB))
            .unwrap_or_else(|e| panic!("{} after {case}: login: {e}", self.name));
        let r = c.query("SELECT 'alive'").unwrap();
        assert_eq!(
            r.rows_text(),
            vec![vec!["alive"]],
            "{} after {case}",
            self.name
        );
    }
}

/// Reads what is left on `c` until it closes (bounded), returns the ERR
/// packets among it; panics if it stays open or if anything in it is an OK.
fn expect_close(side: &Side, case: &str, c: &mut RawClient, within: Duration) -> Vec<ErrPacket> {
    let started = Instant::now();
    let (bytes, closed) = c.read_until_closed(within);
    assert!(
        closed,
        "{} {case}: connection still open after {:?}",
        side.name,
        started.elapsed()
    );
    let packets = split_packets(&bytes);
    assert!(
        !packets.iter().any(|(_, p)| p.first() == Some(&0x00)),
        "{} {case}: got an OK packet: {packets:?}",
        side.name
    );
    packets
        .iter()
        .filter_map(|(_, p)| ErrPacket::parse(p))
        .collect()
}

fn handshake_frame(c: &RawClient, user: &str, password: &str, seq: u8) -> Vec<u8> {
    let auth = native_scramble(password, &c.greeting().scramble);
    let p = handshake_response(
        DEFAULT_CAPS,
        user,
        &auth,
        Some(APP_DB),
        "mysql_native_password",
    );
    frame(seq, &p)
}

fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    f.push(seq);
    f.extend_from_slice(payload);
    f
}

fn code_and_state(errs: &[ErrPacket]) -> Vec<(u16, String)> {
    errs.iter().map(|e| (e.code, e.sqlstate.clone())).collect()
}

// ---------------------------------------------------------------------------
// Handshake (B1, B3)
// ---------------------------------------------------------------------------

fn handshake_cases(side: &mut Side) {
    // Garbage instead of a handshake response: "Bad handshake", closed.
    let mut c = RawClient::connect(side.port).unwrap();
    c.write_packet(b"hello").unwrap();
    let errs = expect_close(side, "garbage handshake", &mut c, Duration::from_secs(5));
    assert_eq!(
        errs.iter().map(|e| e.code).collect::<Vec<_>>(),
        vec![1043],
        "{}",
        side.name
    );
    side.still_serves("garbage handshake");

    // A handshake response truncated at every offset, then EOF: closed,
    // never logged in.
    let probe = RawClient::connect(side.port).unwrap();
    let full = handshake_frame(&probe, APP_USER, APP_PASSWORD, 1);
    drop(probe);
    for cut in 0..full.len() {
        let mut c = RawClient::connect(side.port).unwrap();
        let f = handshake_frame(&c, APP_USER, APP_PASSWORD, 1);
        c.write_raw(&f[..cut]).unwrap();
        c.stream.shutdown(Shutdown::Write).unwrap();
        expect_close(
            side,
            &format!("handshake cut at {cut}"),
            &mut c,
            Duration::from_secs(5),
        );
    }
    side.still_serves("truncated handshakes");

    // Truncated and then silent: closed by the handshake timeout.
    let mut c = RawClient::connect(side.port).unwrap();
    let f = handshake_frame(&c, APP_USER, APP_PASSWORD, 1);
    c.write_raw(&f[..20]).unwrap();
    let started = Instant::now();
    expect_close(
        side,
        "silent half handshake",
        &mut c,
        Duration::from_secs(10),
    );
    let took = started.elapsed();
    assert!(
        took >= HANDSHAKE_TIMEOUT - Duration::from_millis(500) && took < HANDSHAKE_TIMEOUT * 3,
        "{}: closed after {took:?}",
        side.name
    );
    side.still_serves("silent half handshake");

    // Wrong sequence id in the handshake response.
    let mut c = RawClient::connect(side.port).unwrap();
    let f = handshake_frame(&c, APP_USER, APP_PASSWORD, 5);
    c.write_raw(&f).unwrap();
    let errs = expect_close(side, "handshake seq 5", &mut c, Duration::from_secs(5));
    assert_eq!(
        code_and_state(&errs),
        vec![(1156, "08S01".to_string())],
        "{}",
        side.name
    );
    side.still_serves("handshake seq 5");

    // An auth response longer than the packet, a user name without NUL.
    for (case, payload) in [
        ("auth length past the end", {
            let mut p = handshake_response(DEFAULT_CAPS, APP_USER, &[1; 20], None, "");
            let at = 32 + APP_USER.len() + 1;
            p[at] = 250;
            p.truncate(at + 5);
            p
        }),
        ("user without NUL", {
            let mut p = handshake_response(DEFAULT_CAPS, "", &[], None, "");
            p.truncate(32);
            p.extend_from_slice(b"appappappappapp");
            p
        }),
    ] {
        let mut c = RawClient::connect(side.port).unwrap();
        c.write_packet(&payload).unwrap();
        let errs = expect_close(side, case, &mut c, Duration::from_secs(5));
        assert!(
            errs.iter().all(|e| e.code == 1043 || e.code == 1045),
            "{} {case}: {errs:?}",
            side.name
        );
        side.still_serves(case);
    }

    // SSL request, then the handshake response in plaintext: never logged
    // in (the right password does not help).
    let mut c = RawClient::connect(side.port).unwrap();
    let mut ssl = (DEFAULT_CAPS | CLIENT_SSL).to_le_bytes().to_vec();
    ssl.extend_from_slice(&(16u32 << 20).to_le_bytes());
    ssl.push(45);
    ssl.extend_from_slice(&[0; 23]);
    c.write_packet(&ssl).unwrap();
    let f = handshake_frame(&c, APP_USER, APP_PASSWORD, 2);
    let _ = c.write_raw(&f);
    expect_close(
        side,
        "SSL request then plaintext",
        &mut c,
        Duration::from_secs(5),
    );
    side.still_serves("SSL request then plaintext");
}

#[test]
fn bad_handshakes_are_refused_and_the_proxy_lives_on() {
    let db = server();
    handshake_cases(&mut Side {
        name: "direct",
        port: db.port(),
        proxy: None,
    });
    let backend = MariaDb::start();
    let mut p = proxy(&backend);
    handshake_cases(&mut Side {
        name: "proxy",
        port: p.port(),
        proxy: Some(&mut p),
    });
}

// ---------------------------------------------------------------------------
// Commands (B1, B2, B5)
// ---------------------------------------------------------------------------

fn login(side: &Side) -> RawClient {
    RawClient::login_to(side.port, APP_USER, APP_PASSWORD, Some(APP_DB))
}

/// Unknown command bytes (COM_DAEMON, 0x1d, is one too: servers answer it
/// like any unknown byte) and an empty packet: ER_UNKNOWN_COM_ERROR in the
/// server's words, and the connection keeps working.
fn unknown_command_cases(side: &mut Side) -> Vec<ErrPacket> {
    let mut seen = Vec::new();
    for cmd in [&[0x60u8][..], &[0xee, 1, 2, 3], &[0x1d], &[]] {
        let mut c = login(side);
        let reply = c.command(cmd).unwrap();
        let e = reply
            .err()
            .unwrap_or_else(|| panic!("{}: {reply:?}", side.name));
        assert_eq!(
            (e.code, e.sqlstate.as_str(), e.message.as_str()),
            (1047, "08S01", "Unknown command"),
            "{} command {cmd:?}",
            side.name
        );
        seen.push(e.clone());
        let r = c.query("SELECT 'after unknown'").unwrap();
        assert_eq!(r.rows_text(), vec![vec!["after unknown"]]);
    }
    side.still_serves("unknown commands");
    seen
}

#[test]
fn unknown_commands_get_1047_and_the_connection_works() {
    let db = server();
    let direct = unknown_command_cases(&mut Side {
        name: "direct",
        port: db.port(),
        proxy: None,
    });
    let backend = MariaDb::start();
    let mut p = proxy(&backend);
    let via = unknown_command_cases(&mut Side {
        name: "proxy",
        port: p.port(),
        proxy: Some(&mut p),
    });
    assert_eq!(via, direct);
}

fn command_cases(side: &mut Side) -> Vec<ErrPacket> {
    let mut seen = Vec::new();

    // Wrong sequence id on a command: "Got packets out of order", closed.
    let mut c = login(side);
    c.write_packet_seq(3, b"\x03SELECT 1").unwrap();
    let errs = expect_close(side, "command seq 3", &mut c, Duration::from_secs(5));
    assert_eq!(code_and_state(&errs), vec![(1156, "08S01".to_string())]);
    seen.extend(errs);
    side.still_serves("command seq 3");

    // A command truncated at every offset, then EOF: closed, no answer.
    let mut query = b"\x03SELECT 'a fairly long statement', 1, 2, 3".to_vec();
    query.extend_from_slice(&[b' '; 100]);
    let full = frame(0, &query);
    for cut in [1, 2, 3, 4, 5, 10, 50, full.len() - 1] {
        let mut c = login(side);
        c.write_raw(&full[..cut]).unwrap();
        c.stream.shutdown(Shutdown::Write).unwrap();
        let errs = expect_close(
            side,
            &format!("command cut at {cut}"),
            &mut c,
            Duration::from_secs(5),
        );
        assert!(errs.is_empty(), "{}: {errs:?}", side.name);
    }
    side.still_serves("truncated commands");

    // Over max_allowed_packet: refused with 1153, closed.
    let mut c = login(side);
    let mut q = b"\x03SELECT LENGTH('".to_vec();
    q.resize(2 * MAX_PACKET, b'x');
    q.extend_from_slice(b"')");
    let _ = c.write_packet(&q);
    let errs = expect_close(
        side,
        "over max_allowed_packet",
        &mut c,
        Duration::from_secs(5),
    );
    assert_eq!(
        errs,
        vec![ErrPacket {
            code: 1153,
            sqlstate: "08S01".into(),
            message: "Got a packet bigger than 'max_allowed_packet' bytes".into(),
        }],
        "{}",
        side.name
    );
    seen.extend(errs);
    side.still_serves("over max_allowed_packet");

    // Just under it: answered.
    let mut c = login(side);
    let mut q = b"\x03SELECT LENGTH('".to_vec();
    let fill = MAX_PACKET - 1024;
    q.resize(q.len() + fill, b'y');
    q.extend_from_slice(b"')");
    let r = c.command(&q).unwrap();
    assert_eq!(r.rows_text(), vec![vec![fill.to_string()]], "{}", side.name);

    // Prepared statements with bad ids and bad parameters.
    let mut c = login(side);
    let mut exec = vec![0x17]; // COM_STMT_EXECUTE
    exec.extend_from_slice(&12345u32.to_le_bytes());
    exec.extend_from_slice(&[0, 1, 0, 0, 0]);
    let r = c.command(&exec).unwrap();
    let e = r
        .err()
        .unwrap_or_else(|| panic!("{}: {r:?}", side.name))
        .clone();
    assert_eq!(
        (e.code, e.sqlstate.as_str()),
        (1243, "HY000"),
        "{}",
        side.name
    );
    seen.push(e);
    // COM_STMT_CLOSE of an unknown id has no reply; the next query answers.
    c.seq = 0;
    c.write_packet(&[0x19, 9, 9, 9, 9]).unwrap();
    assert_eq!(c.query("SELECT 3").unwrap().rows_text(), vec![vec!["3"]]);
    // Prepare "SELECT ?, ?" then execute without the parameter block.
    c.seq = 0;
    let mut prep = vec![0x16];
    prep.extend_from_slice(b"SELECT ?, ?");
    c.write_packet(&prep).unwrap();
    let (_, ok) = c.read_packet().unwrap();
    assert_eq!(ok.first(), Some(&0x00), "{}: {ok:?}", side.name);
    let stmt_id = u32::from_le_bytes(ok[1..5].try_into().unwrap());
    // Two parameter definitions and an EOF follow (no columns known yet).
    loop {
        let (_, p) = c.read_packet().unwrap();
        if p.first() == Some(&0xfe) && p.len() < 9 {
            // There may be a second EOF after the column definitions.
            let columns = u16::from_le_bytes([ok[5], ok[6]]);
            if columns == 0 {
                break;
            }
            loop {
                let (_, p) = c.read_packet().unwrap();
                if p.first() == Some(&0xfe) && p.len() < 9 {
                    break;
                }
            }
            break;
        }
    }
    let mut exec = vec![0x17];
    exec.extend_from_slice(&stmt_id.to_le_bytes());
    exec.extend_from_slice(&[0, 1, 0, 0, 0]);
    let r = c.command(&exec).unwrap();
    let e = r
        .err()
        .unwrap_or_else(|| panic!("{}: {r:?}", side.name))
        .clone();
    assert_eq!(
        (e.code, e.sqlstate.as_str()),
        (1210, "HY000"),
        "{}",
        side.name
    );
    seen.push(e);
    assert_eq!(c.query("SELECT 4").unwrap().rows_text(), vec![vec!["4"]]);

    side.still_serves("command cases");
    seen
}

#[test]
fn bad_commands_get_the_servers_errors_and_the_proxy_lives_on() {
    let db = server();
    let direct = command_cases(&mut Side {
        name: "direct",
        port: db.port(),
        proxy: None,
    });
    let backend = MariaDb::start();
    let mut p = proxy(&backend);
    let via = command_cases(&mut Side {
        name: "proxy",
        port: p.port(),
        proxy: Some(&mut p),
    });
    assert_eq!(via, direct);
}

/// Packets at and around 2^24-1 bytes (B2): a payload of exactly
/// 0xFFFFFF bytes needs an empty packet after it; one byte more needs a
/// one-byte packet. Both answered like the server answers them.
fn boundary_scenario(t: &Target) -> Vec<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for total in [0xff_ffff - 1, 0xff_ffff, 0x100_0000, 0x100_0001] {
        let mut c = RawClient::login_to(t.port, APP_USER, APP_PASSWORD, Some(APP_DB));
        let mut q = b"\x03SELECT LENGTH('".to_vec();
        let fill = total - q.len() - 2;
        q.resize(q.len() + fill, b'z');
        q.extend_from_slice(b"')");
        assert_eq!(q.len(), total);
        let mut bytes = Vec::new();
        let mut seq = 0u8;
        let mut rest = &q[..];
        loop {
            let n = rest.len().min(0xff_ffff);
            bytes.extend_from_slice(&frame(seq, &rest[..n]));
            seq += 1;
            rest = &rest[n..];
            if n < 0xff_ffff {
                break;
            }
        }
        c.write_raw(&bytes).unwrap();
        c.seq = seq;
        let (reply, _) = c.read_reply().unwrap();
        let rows = reply.rows_text();
        assert_eq!(
            rows,
            vec![vec![fill.to_string()]],
            "{} total {total}",
            t.name
        );
        out.push(rows);
    }
    out
}

#[test]
fn packets_around_16_mib() {
    let db = MariaDb::start();
    direct_then_proxy(&db, boundary_scenario);
}

// ---------------------------------------------------------------------------
// Refused commands (B5)
// ---------------------------------------------------------------------------

/// Replication and shutdown commands are refused by the proxy with a clean
/// ERR and never reach the backend, even for an account allowed to run
/// them there. The direct half shows the detector works: the server does
/// log a binlog dump it receives.
#[test]
fn replication_and_shutdown_commands_are_not_forwarded() {
    let db = MariaDb::start_with(&["--general-log=1", "--log-output=TABLE"]);
    db.sql(
        "CREATE USER 'ops'@'%' IDENTIFIED BY 'ops_password';
         GRANT SHUTDOWN, REPLICATION SLAVE, REPLICATION CLIENT, SUPER ON *.* TO 'ops'@'%';
         GRANT SELECT ON app.* TO 'ops'@'%'",
    );
    let logged = |db: &MariaDb| -> Vec<String> {
        db.query(
            "SELECT command_type FROM mysql.general_log
             WHERE command_type IN ('Binlog Dump', 'Register Slave', 'Shutdown')",
        )
    };
    let mut binlog_dump = vec![COM_BINLOG_DUMP];
    binlog_dump.extend_from_slice(&4u32.to_le_bytes()); // position
    binlog_dump.extend_from_slice(&0u16.to_le_bytes()); // flags
    binlog_dump.extend_from_slice(&77u32.to_le_bytes()); // server id
    binlog_dump.extend_from_slice(b"mysql-bin.000001");

    // Direct: the server receives it (and refuses: no binary log).
    let mut c = RawClient::login_to(db.port(), "ops", "ops_password", None);
    let r = c.command(&binlog_dump).unwrap();
    assert!(r.err().is_some(), "{r:?}");
    assert_eq!(logged(&db), vec!["Binlog Dump"]);
    db.sql("TRUNCATE TABLE mysql.general_log");

    let mut proxy = proxy_for(&db);
    let mut register = vec![COM_REGISTER_SLAVE];
    register.extend_from_slice(&77u32.to_le_bytes());
    register.extend_from_slice(&[0, 0, 0]); // host, user, password: empty
    register.extend_from_slice(&0u16.to_le_bytes());
    register.extend_from_slice(&[0; 8]);
    let mut binlog_dump_gtid = vec![0x1e];
    binlog_dump_gtid.extend_from_slice(&[0; 16]);
    let cases: [(&str, Vec<u8>); 4] = [
        ("COM_BINLOG_DUMP", binlog_dump),
        ("COM_REGISTER_SLAVE", register),
        ("COM_BINLOG_DUMP_GTID", binlog_dump_gtid),
        ("COM_SHUTDOWN", vec![0x08, 0x00]),
    ];
    for (case, cmd) in cases {
        let mut c = RawClient::login_to(proxy.port(), "ops", "ops_password", None);
        c.seq = 0;
        c.write_packet(&cmd).unwrap();
        let (_, p) = c
            .read_packet()
            .unwrap_or_else(|e| panic!("{case}: no answer from the proxy: {e}"));
        let e = ErrPacket::parse(&p).unwrap_or_else(|| panic!("{case}: not an ERR: {p:?}"));
        assert!(e.code > 0 && e.sqlstate.len() == 5, "{case}: {e:?}");
        proxy.assert_alive();
        assert_eq!(db.query::<i32>("SELECT 1"), vec![1], "{case}: backend down");
    }
    assert_eq!(
        logged(&db),
        Vec::<String>::new(),
        "forwarded to the backend"
    );
    let mut c = RawClient::login_to(proxy.port(), APP_USER, APP_PASSWORD, Some(APP_DB));
    assert_eq!(c.query("SELECT 5").unwrap().rows_text(), vec![vec!["5"]]);
}
