//! Entry points shared by the cargo-fuzz targets and the corpus replay in `cargo test`.
//!
//! Each function takes arbitrary bytes, must never panic on them, and checks
//! the properties that hold for every input (`assert!` here is the oracle):
//! write-then-parse gives back the same value, scanning a stream in arbitrary
//! chunks gives the same answer as scanning it in one piece, and a scan never
//! reports more bytes forwardable than it was given. Corpora live in
//! `fuzz/corpus/<target>/`; `tests/fuzz_corpus.rs` replays them on stable.

use crate::protocol::command::{expects_reply, Command};
use crate::protocol::consts::caps::{CLIENT_DEPRECATE_EOF, CLIENT_PROTOCOL_41, PROXY_SUPPORTED};
use crate::protocol::consts::status::{
    SERVER_MORE_RESULTS_EXISTS, SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_CURSOR_EXISTS,
};
use crate::protocol::frame::{
    begin_packet, finish_packet, parse_header, write_packet, FrameError, InfileRelay, PacketRelay,
    RelayScan, HEADER_LEN,
};
use crate::protocol::handshake::{
    append_attribute, attributes, attributes_valid, is_ssl_request, AuthSwitchRequest, Greeting,
    HandshakeResponse,
};
use crate::protocol::packet::{
    parse_eof, parse_err, parse_ok, write_err, write_ok, write_text_row, ErrorCode,
};
use crate::protocol::reader::{put_lenenc_int, Reader};
use crate::protocol::reply::{Expect, ReplyError, ReplyScan, ReplyState, ReplyTracker};

/// Chunk sizes from a seed: 1 to 17 bytes, varied, deterministic.
struct Chunks(u32);

impl Iterator for Chunks {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        Some(1 + (self.0 >> 16) as usize % 17)
    }
}

/// Feeds `stream` to `scan` in chunks the way the reactor does (the caller
/// keeps the unscanned rest and appends new bytes to it) until the scan
/// reports the end or an error. Returns the total forwardable bytes and the
/// last result.
fn chunked<T: Copy, E>(
    stream: &[u8],
    seed: u8,
    mut scan: impl FnMut(&[u8]) -> Result<(usize, T), E>,
    ended: impl Fn(&T) -> bool,
) -> Result<(usize, T), E> {
    let (mut start, mut end) = (0, 0);
    let mut chunks = Chunks(u32::from(seed));
    loop {
        end = (end + chunks.next().unwrap_or(1)).min(stream.len());
        let (n, t) = scan(&stream[start..end])?;
        assert!(n <= end - start, "forwardable beyond the input");
        start += n;
        if ended(&t) || end == stream.len() {
            return Ok((start, t));
        }
    }
}

fn relay_scan(r: Result<RelayScan, FrameError>) -> Result<(usize, bool), FrameError> {
    r.map(|s| (s.forwardable, s.done))
}

/// Framing: `[mode, seed, rest...]`. Modes: follow `rest` as one client
/// packet or as LOCAL INFILE content (in one piece and in chunks, which must
/// agree), or frame `rest` as a payload and read it back.
pub fn framer(data: &[u8]) {
    let &[mode, seed, ref rest @ ..] = data else {
        return;
    };
    let _ = parse_header(rest);
    let expected_seq = seed & 3;
    let max_len = match mode >> 2 {
        0 => usize::MAX,
        n => usize::from(n) * 3,
    };
    match mode % 3 {
        0 => {
            let mut one = PacketRelay::new(expected_seq, max_len);
            let whole = relay_scan(one.scan(rest));
            if let Ok((n, _)) = whole {
                assert!(n <= rest.len());
            }
            let mut r = PacketRelay::new(expected_seq, max_len);
            let parts = chunked(rest, seed, |b| relay_scan(r.scan(b)), |done| *done);
            assert_eq!(whole, parts);
            if let Ok((_, true)) = whole {
                assert_eq!(one.next_seq(), r.next_seq());
            }
        }
        1 => {
            let mut one = InfileRelay::new(expected_seq, max_len);
            let whole = relay_scan(one.scan(rest));
            let mut r = InfileRelay::new(expected_seq, max_len);
            let parts = chunked(rest, seed, |b| relay_scan(r.scan(b)), |done| *done);
            assert_eq!(whole, parts);
        }
        _ => {
            let mut out = Vec::new();
            let next = write_packet(&mut out, seed, rest);
            assert_eq!(next, seed.wrapping_add(1));
            let h = parse_header(&out).expect("a written header parses");
            assert_eq!((h.len, h.seq), (rest.len(), seed));
            assert_eq!(&out[HEADER_LEN..], rest);
            let mut again = Vec::new();
            let start = begin_packet(&mut again);
            again.extend_from_slice(rest);
            assert_eq!(finish_packet(&mut again, start, seed), next);
            assert_eq!(again, out);
            let mut r = PacketRelay::new(seed, rest.len());
            assert_eq!(
                r.scan(&out),
                Ok(RelayScan {
                    forwardable: out.len(),
                    done: true
                })
            );
            assert_eq!(r.next_seq(), next);
        }
    }
}

/// Handshake packets: `data` is tried as every handshake payload; whatever
/// parses must write back to bytes that parse to the same value.
pub fn handshake(data: &[u8]) {
    let _ = is_ssl_request(data);

    if let Ok(g) = Greeting::parse(data) {
        let mut out = Vec::new();
        g.write(&mut out);
        assert_eq!(Greeting::parse(&out), Ok(g));
        let mut again = Vec::new();
        Greeting::parse(&out)
            .expect("rewritten greeting")
            .write(&mut again);
        assert_eq!(out, again);
    }

    if let Ok(r) = HandshakeResponse::parse(data) {
        assert!(r.attributes.is_none_or(attributes_valid));
        let mut out = Vec::new();
        r.write(&mut out);
        let back = HandshakeResponse::parse(&out).expect("rewritten handshake response");
        assert_eq!(back.capabilities, r.wire_capabilities());
        assert_eq!(
            HandshakeResponse {
                capabilities: r.capabilities,
                ..back
            },
            r
        );
        let mut again = Vec::new();
        back.write(&mut again);
        assert_eq!(out, again);
    }

    if let Ok(a) = AuthSwitchRequest::parse(data) {
        if !data.is_empty() && data.len() > 1 {
            let mut out = Vec::new();
            a.write(&mut out);
            assert_eq!(AuthSwitchRequest::parse(&out), Ok(a));
        }
    }

    // Attribute blocks: a valid one is rebuilt exactly by appending its pairs.
    if attributes_valid(data) {
        let mut block = Vec::new();
        for (k, v) in attributes(data) {
            append_attribute(&mut block, k, v);
        }
        // Non-canonical length encodings (a short length written wide) are
        // valid but rebuild shorter.
        assert!(block.len() <= data.len());
        assert!(attributes_valid(&block));
        assert!(attributes(&block).eq(attributes(data)));
    }
}

/// Commands: `data` is a command payload, decoded under the proxy's full
/// capabilities and under the bare 4.1 protocol.
pub fn command(data: &[u8]) {
    for caps in [PROXY_SUPPORTED, CLIENT_PROTOCOL_41] {
        let Ok(c) = Command::decode(data, caps) else {
            continue;
        };
        let first = data[0];
        match c {
            Command::Query(q) | Command::StmtPrepare(q) | Command::InitDb(q) => {
                assert_eq!(q, &data[1..])
            }
            Command::Unknown(b) => assert_eq!(b, first),
            Command::Refused(r) => assert_eq!(r.code, first),
            Command::ChangeUser(cu) => assert!(cu.attributes.is_none_or(attributes_valid)),
            _ => {}
        }
        if c.expect().is_some() {
            assert!(expects_reply(first));
        }
    }
    // The generic packets a server sends parse without panicking.
    let _ = (parse_ok(data), parse_err(data), parse_eof(data));
    if let Some(ok) = parse_ok(data) {
        let mut out = Vec::new();
        write_ok(
            &mut out,
            0,
            ok.affected_rows,
            ok.last_insert_id,
            ok.status,
            ok.warnings,
        );
        let back = parse_ok(&out[HEADER_LEN..]).expect("rewritten OK");
        assert_eq!(back, ok);
    }
    if let Some(e) = parse_err(data) {
        if let Ok(msg) = std::str::from_utf8(e.message) {
            let mut out = Vec::new();
            write_err(
                &mut out,
                0,
                ErrorCode {
                    code: e.code,
                    sqlstate: "HY000",
                },
                msg,
            );
            let back = parse_err(&out[HEADER_LEN..]).expect("rewritten ERR");
            assert_eq!(back.code, e.code);
            assert!(msg.as_bytes().starts_with(back.message));
        }
    }
}

const EXPECTS: [Expect; 8] = [
    Expect::Query,
    Expect::Prepare,
    Expect::Execute,
    Expect::Fetch,
    Expect::FieldList,
    Expect::Statistics,
    Expect::Simple,
    Expect::InfileResult,
];

fn tracker_scan(t: &mut ReplyTracker, b: &[u8]) -> Result<(usize, ReplyState), ReplyError> {
    t.scan(b)
        .map(|ReplyScan { forwardable, state }| (forwardable, state))
}

/// The reply tracker: `[mode, seed, rest...]`. Mode bits 0-2 pick the reply
/// shape, bit 3 CLIENT_DEPRECATE_EOF, bit 5 MariaDB's metadata caching (bit
/// 6: with the client's definitions in doubt). With bit 4 clear `rest` is a
/// raw backend stream, scanned in one piece and in chunks, which must
/// agree. With bit 4 set `rest` describes a valid Query or Execute reply
/// (see [`build_reply`]), which the tracker must follow to exactly its end.
pub fn reply(data: &[u8]) {
    let &[mode, seed, ref rest @ ..] = data else {
        return;
    };
    let metadata_cache = mode & 32 != 0;
    let new_tracker = |expect: Expect, caps: u32| {
        let t = ReplyTracker::new(expect, caps);
        if metadata_cache {
            t.caching_metadata(mode & 64 != 0)
        } else {
            t
        }
    };
    let caps = CLIENT_PROTOCOL_41
        | if mode & 8 != 0 {
            CLIENT_DEPRECATE_EOF
        } else {
            0
        };
    if mode & 16 == 0 {
        let expect = EXPECTS[usize::from(mode & 7)];
        let mut one = new_tracker(expect, caps);
        let whole = tracker_scan(&mut one, rest);
        if let Ok((n, state)) = whole {
            assert!(n <= rest.len());
            // A finished tracker stays finished and takes nothing more.
            if state != ReplyState::InProgress {
                assert_eq!(
                    one.scan(&rest[n..]),
                    Ok(ReplyScan {
                        forwardable: 0,
                        state
                    })
                );
            }
        }
        let mut t = new_tracker(expect, caps);
        let parts = chunked(
            rest,
            seed,
            |b| tracker_scan(&mut t, b),
            |s| *s != ReplyState::InProgress,
        );
        assert_eq!(whole, parts);
    } else {
        let binary = mode & 1 != 0;
        let deprecate_eof = caps & CLIENT_DEPRECATE_EOF != 0;
        let (stream, want) = build_reply(rest, deprecate_eof, binary, metadata_cache);
        let expect = if binary {
            Expect::Execute
        } else {
            Expect::Query
        };
        let mut full = stream.clone();
        write_packet(&mut full, 0, b"\x03SELECT 1");
        // Generated replies may leave definitions out, so the client's are
        // never in doubt here (that would drop them).
        let mut t = ReplyTracker::new(expect, caps).with_status(SERVER_STATUS_AUTOCOMMIT);
        if metadata_cache {
            t = t.caching_metadata(false);
        }
        let got = chunked(
            &full,
            seed,
            |b| tracker_scan(&mut t, b),
            |s| *s != ReplyState::InProgress,
        );
        assert_eq!(
            got,
            Ok((stream.len(), want)),
            "generated reply not followed"
        );
    }
}

/// Builds a valid reply to COM_QUERY (text rows) or COM_STMT_EXECUTE
/// (`binary` rows) from a byte script, and the state the tracker must end
/// in. Each result takes one script byte: OK, a result set (columns, rows
/// and their sizes from the next bytes), an ERR (which ends the reply), a
/// result set cut by an ERR, or for Execute a cursor. Results chain with
/// SERVER_MORE_RESULTS_EXISTS until the script runs out. `metadata_cache`:
/// column counts carry MariaDB's flag byte, and an Execute result set
/// leaves its definitions out when its column byte has bit 7 set.
pub fn build_reply(
    script: &[u8],
    deprecate_eof: bool,
    binary: bool,
    metadata_cache: bool,
) -> (Vec<u8>, ReplyState) {
    let mut out = Vec::new();
    let mut seq = 1u8;
    let mut r = Reader::new(script);
    let base = SERVER_STATUS_AUTOCOMMIT;
    // The status the tracker reports after an ERR: the last OK/EOF's, or the
    // seeded one (the caller seeds AUTOCOMMIT).
    let mut last = base;
    let end = |out: &mut Vec<u8>, seq: u8, status: u16| {
        if deprecate_eof {
            let mut p = vec![0xfe, 0, 0];
            p.extend_from_slice(&status.to_le_bytes());
            p.extend_from_slice(&[0, 0]);
            write_packet(out, seq, &p)
        } else {
            let mut p = vec![0xfe, 0, 0];
            p.extend_from_slice(&status.to_le_bytes());
            write_packet(out, seq, &p)
        }
    };
    loop {
        let op = r.u8().unwrap_or(0);
        let more = !r.is_empty();
        let status = if more {
            base | SERVER_MORE_RESULTS_EXISTS
        } else {
            base
        };
        match op % 5 {
            0 => {
                seq = write_ok(&mut out, seq, u64::from(op), 0, status, 0);
                last = status;
            }
            2 => {
                write_err(
                    &mut out,
                    seq,
                    ErrorCode::ER_PARSE_ERROR,
                    "You have an error in your SQL syntax",
                );
                return (out, ReplyState::Done { status: last });
            }
            n => {
                let cursor = n == 4 && binary;
                let col_byte = r.u8().unwrap_or(0);
                let cols = 1 + usize::from(col_byte % 4);
                let definitions = !(metadata_cache && binary && col_byte & 0x80 != 0);
                let mut p = Vec::new();
                put_lenenc_int(&mut p, cols as u64);
                if metadata_cache {
                    p.push(u8::from(definitions));
                }
                seq = write_packet(&mut out, seq, &p);
                for i in (0..cols).filter(|_| definitions) {
                    p.clear();
                    p.extend_from_slice(b"\x03def\x04shop\x01t\x01t");
                    p.extend_from_slice(&[2, b'c', b'0' + i as u8, 2, b'c', b'0' + i as u8]);
                    p.extend_from_slice(&[0x0c, 45, 0, 200, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0]);
                    seq = write_packet(&mut out, seq, &p);
                }
                if cursor {
                    let mut p = vec![0xfe, 0, 0];
                    p.extend_from_slice(&(base | SERVER_STATUS_CURSOR_EXISTS).to_le_bytes());
                    write_packet(&mut out, seq, &p);
                    return (
                        out,
                        ReplyState::Done {
                            status: base | SERVER_STATUS_CURSOR_EXISTS,
                        },
                    );
                }
                if !deprecate_eof {
                    seq = end(&mut out, seq, base);
                    last = base;
                }
                let rows = r.u8().unwrap_or(0) % 6;
                for _ in 0..rows {
                    p.clear();
                    if binary {
                        p.push(0);
                    }
                    let mut vals: Vec<Option<Vec<u8>>> = Vec::new();
                    for _ in 0..cols {
                        let l = r.u8().unwrap_or(1);
                        // 0xFB stands for NULL; otherwise a value of l*3 bytes,
                        // so some lengths need the 3-byte lenenc form.
                        vals.push((l != 0xfb).then(|| vec![b'v'; usize::from(l) * 3]));
                    }
                    let refs: Vec<Option<&[u8]>> = vals.iter().map(|v| v.as_deref()).collect();
                    write_text_row(&mut p, &refs);
                    seq = write_packet(&mut out, seq, &p);
                }
                if n == 3 {
                    write_err(
                        &mut out,
                        seq,
                        ErrorCode::ER_QUERY_INTERRUPTED,
                        "Query execution was interrupted",
                    );
                    return (out, ReplyState::Done { status: last });
                }
                seq = end(&mut out, seq, status);
                last = status;
            }
        }
        if !more {
            return (out, ReplyState::Done { status });
        }
    }
}

/// The shard-key scanner: `[flags, sql...]`. Flag bits: 0 NO_BACKSLASH_ESCAPES,
/// 1 ANSI_QUOTES, 2-3 the server version (10.11, 5.5, 11.4, 0). Whatever
/// the bytes, the scanner answers (never panics), twice the same, exactly as
/// it does without its fast paths, with statement ranges inside the input
/// and in order, placeholder indexes below the placeholder count, and key
/// values only for a sharded table.
pub fn scanner(data: &[u8]) {
    use crate::route::scanner::{
        analyze, analyze_reference, split_statements, ScanOptions, Target,
    };
    use crate::route::schema::{KeyType, MissingKey, Schema, TableRule};
    use crate::route::value::KeyValue;

    let Some((&flags, sql)) = data.split_first() else {
        return;
    };
    let opts = ScanOptions {
        no_backslash_escapes: flags & 1 != 0,
        ansi_quotes: flags & 2 != 0,
        server_version: [101119, 50544, 110402, 0][usize::from(flags >> 2 & 3)],
    };
    let sharded = |key: &str, key_type| TableRule::Sharded {
        key: key.into(),
        key_type,
        missing_key: MissingKey::Error,
    };
    let schema = Schema::new()
        .with_table("users", sharded("userid", KeyType::Int))
        .with_table("orders", sharded("userid", KeyType::Int))
        .with_table("accounts", sharded("name", KeyType::StringCaseInsensitive))
        .with_table("countries", TableRule::Global);
    let check = |sql: &[u8]| {
        let first = analyze(sql, &schema, &opts);
        assert_eq!(first, analyze(sql, &schema, &opts), "not deterministic");
        // The fast paths answer exactly as the token-by-token parser.
        assert_eq!(first, analyze_reference(sql, &schema, &opts), "fast path");
        let question_marks = sql.iter().filter(|&&c| c == b'?').count();
        if let Ok(a) = first {
            assert!(usize::from(a.placeholders) <= question_marks);
            if let Target::Keys {
                table,
                column,
                values,
            } = a.target
            {
                assert!(!values.is_empty());
                assert!(
                    schema.table(table).is_some() || table.contains(&b'`') || table.contains(&b'"')
                );
                assert!(!column.is_empty());
                for v in &values {
                    if let KeyValue::Placeholder(i) = v {
                        assert!(*i < a.placeholders);
                    }
                }
            }
        }
    };
    check(sql);
    let mut end = 0;
    for r in split_statements(sql, &opts) {
        assert!(r.start >= end && r.start < r.end && r.end <= sql.len());
        end = r.end;
        check(&sql[r]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_replies_are_followed() {
        for script in [
            &b""[..],
            b"\x00",
            b"\x01\x02\x03abcdefghijkl",
            b"\x05\x01\x00\x02",
            b"\x04\x03\x02\xfb\x01\x01",
        ] {
            for mode in [16u8, 17, 24, 25] {
                let mut data = vec![mode, 7];
                data.extend_from_slice(script);
                reply(&data);
            }
        }
        // The ERR after an OK with MORE_RESULTS reports that OK's status.
        let (_, state) = build_reply(b"\x00\x02", false, false, false);
        assert_eq!(
            state,
            ReplyState::Done {
                status: SERVER_STATUS_AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS
            }
        );
    }

    #[test]
    fn every_entry_point_takes_short_inputs() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            framer(&data);
            handshake(&data);
            command(&data);
            reply(&data);
        }
    }
}
