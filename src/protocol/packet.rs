//! The generic response packets: ERR, OK and EOF, the error codes the proxy
//! sends itself, and the few result-set writers it needs to answer locally.
//!
//! Protocol pages: <https://mariadb.com/kb/en/err_packet/>,
//! <https://mariadb.com/kb/en/ok_packet/>, <https://mariadb.com/kb/en/eof_packet/>,
//! <https://mariadb.com/kb/en/result-set-packets/>. Codes and SQLSTATEs are
//! MariaDB's (`sql/share/errmsg-utf8.txt`, `include/errmsg.h`).

use super::frame::{begin_packet, finish_packet};
use super::reader::{put_lenenc_bytes, put_lenenc_int, Reader};

/// An error code and its SQLSTATE, as the server would send them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode {
    /// The MySQL error number.
    pub code: u16,
    /// The five-character SQLSTATE.
    pub sqlstate: &'static str,
}

const fn ec(code: u16, sqlstate: &'static str) -> ErrorCode {
    ErrorCode { code, sqlstate }
}

impl ErrorCode {
    /// Too many connections.
    pub const ER_CON_COUNT_ERROR: ErrorCode = ec(1040, "08004");
    /// Bad handshake.
    pub const ER_HANDSHAKE_ERROR: ErrorCode = ec(1043, "08S01");
    /// Access denied for user to database.
    pub const ER_DBACCESS_DENIED_ERROR: ErrorCode = ec(1044, "42000");
    /// Access denied for user (using password: YES/NO).
    pub const ER_ACCESS_DENIED_ERROR: ErrorCode = ec(1045, "28000");
    /// No database selected.
    pub const ER_NO_DB_ERROR: ErrorCode = ec(1046, "3D000");
    /// Unknown command.
    pub const ER_UNKNOWN_COM_ERROR: ErrorCode = ec(1047, "08S01");
    /// Unknown database.
    pub const ER_BAD_DB_ERROR: ErrorCode = ec(1049, "42000");
    /// Server shutdown in progress.
    pub const ER_SERVER_SHUTDOWN: ErrorCode = ec(1053, "08S01");
    /// Syntax error.
    pub const ER_PARSE_ERROR: ErrorCode = ec(1064, "42000");
    /// Unknown error.
    pub const ER_UNKNOWN_ERROR: ErrorCode = ec(1105, "HY000");
    /// Got a packet bigger than max_allowed_packet.
    pub const ER_NET_PACKET_TOO_LARGE: ErrorCode = ec(1153, "08S01");
    /// Got an error reading communication packets.
    pub const ER_NET_READ_ERROR: ErrorCode = ec(1158, "08S01");
    /// Got timeout reading communication packets.
    pub const ER_NET_READ_INTERRUPTED: ErrorCode = ec(1159, "08S01");
    /// Got packets out of order.
    pub const ER_NET_PACKETS_OUT_OF_ORDER: ErrorCode = ec(1156, "08S01");
    /// Lock wait timeout exceeded.
    pub const ER_LOCK_WAIT_TIMEOUT: ErrorCode = ec(1205, "HY000");
    /// Access denied; you need the X privilege.
    pub const ER_SPECIFIC_ACCESS_DENIED_ERROR: ErrorCode = ec(1227, "42000");
    /// This version does not yet support X.
    pub const ER_NOT_SUPPORTED_YET: ErrorCode = ec(1235, "42000");
    /// Unknown prepared statement handler.
    pub const ER_UNKNOWN_STMT_HANDLER: ErrorCode = ec(1243, "HY000");
    /// Client does not support the authentication protocol requested.
    pub const ER_NOT_SUPPORTED_AUTH_MODE: ErrorCode = ec(1251, "08004");
    /// The server is running with an option that prevents this statement.
    pub const ER_OPTION_PREVENTS_STATEMENT: ErrorCode = ec(1290, "HY000");
    /// Query execution was interrupted.
    pub const ER_QUERY_INTERRUPTED: ErrorCode = ec(1317, "70100");
    /// A prepared statement must be prepared again (its tables changed).
    pub const ER_NEED_REPREPARE: ErrorCode = ec(1615, "HY000");
    /// MariaDB: connection was killed.
    pub const ER_CONNECTION_KILLED: ErrorCode = ec(1927, "70100");
    /// Client error: can't connect to the server.
    pub const CR_CONN_HOST_ERROR: ErrorCode = ec(2003, "HY000");
    /// Client error: the server has gone away.
    pub const CR_SERVER_GONE_ERROR: ErrorCode = ec(2006, "HY000");
    /// Client error: lost connection to the server during query.
    pub const CR_SERVER_LOST: ErrorCode = ec(2013, "HY000");
}

/// Longest error message written; the server's own limit (MYSQL_ERRMSG_SIZE).
pub const MAX_ERR_MESSAGE: usize = 512;

/// Writes a complete, framed ERR packet. Messages longer than
/// [`MAX_ERR_MESSAGE`] bytes are cut at a character boundary. Returns the
/// next sequence id.
pub fn write_err(out: &mut Vec<u8>, seq: u8, code: ErrorCode, message: &str) -> u8 {
    let mut end = message.len().min(MAX_ERR_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let start = begin_packet(out);
    out.push(0xff);
    out.extend_from_slice(&code.code.to_le_bytes());
    out.push(b'#');
    debug_assert_eq!(code.sqlstate.len(), 5);
    let mut state = [b'H', b'Y', b'0', b'0', b'0'];
    for (d, s) in state.iter_mut().zip(code.sqlstate.bytes()) {
        *d = s;
    }
    out.extend_from_slice(&state);
    out.extend_from_slice(&message.as_bytes()[..end]);
    finish_packet(out, start, seq)
}

/// Writes a complete, framed OK packet (header 0x00). Returns the next
/// sequence id.
pub fn write_ok(
    out: &mut Vec<u8>,
    seq: u8,
    affected_rows: u64,
    last_insert_id: u64,
    status: u16,
    warnings: u16,
) -> u8 {
    let start = begin_packet(out);
    out.push(0x00);
    put_lenenc_int(out, affected_rows);
    put_lenenc_int(out, last_insert_id);
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&warnings.to_le_bytes());
    finish_packet(out, start, seq)
}

/// Writes a complete, framed EOF packet. Returns the next sequence id.
pub fn write_eof(out: &mut Vec<u8>, seq: u8, warnings: u16, status: u16) -> u8 {
    let start = begin_packet(out);
    out.push(0xfe);
    out.extend_from_slice(&warnings.to_le_bytes());
    out.extend_from_slice(&status.to_le_bytes());
    finish_packet(out, start, seq)
}

/// Writes the packet that ends a result set: an EOF packet, or with
/// `CLIENT_DEPRECATE_EOF` an OK packet with the 0xFE header. Returns the
/// next sequence id.
pub fn write_result_end(
    out: &mut Vec<u8>,
    seq: u8,
    deprecate_eof: bool,
    status: u16,
    warnings: u16,
) -> u8 {
    if !deprecate_eof {
        return write_eof(out, seq, warnings, status);
    }
    let start = begin_packet(out);
    out.extend_from_slice(&[0xfe, 0, 0]);
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&warnings.to_le_bytes());
    finish_packet(out, start, seq)
}

/// A parsed ERR packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrPacket<'a> {
    /// The error number.
    pub code: u16,
    /// The SQLSTATE, when the packet has the `#` marker (4.1 protocol).
    pub sqlstate: Option<&'a [u8]>,
    /// The message.
    pub message: &'a [u8],
}

/// Parses an ERR payload (header 0xFF).
pub fn parse_err(payload: &[u8]) -> Option<ErrPacket<'_>> {
    let mut r = Reader::new(payload);
    if r.u8()? != 0xff {
        return None;
    }
    let code = r.u16_le()?;
    let mut sqlstate = None;
    if r.peek() == Some(b'#') {
        let mut s = r.clone();
        s.skip(1)?;
        if let Some(state) = s.bytes(5) {
            sqlstate = Some(state);
            r = s;
        }
    }
    Some(ErrPacket {
        code,
        sqlstate,
        message: r.rest(),
    })
}

/// A parsed OK packet (the fields the proxy needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OkPacket {
    /// Rows affected.
    pub affected_rows: u64,
    /// The last AUTO_INCREMENT id.
    pub last_insert_id: u64,
    /// Server status flags.
    pub status: u16,
    /// Warning count.
    pub warnings: u16,
}

/// Parses an OK payload: header 0x00, or 0xFE when the payload is at least 7
/// bytes (the OK packet that ends a result set under `CLIENT_DEPRECATE_EOF`;
/// a 0xFE packet shorter than that is an EOF packet).
pub fn parse_ok(payload: &[u8]) -> Option<OkPacket> {
    let mut r = Reader::new(payload);
    match r.u8()? {
        0x00 => {}
        0xfe if payload.len() >= 7 => {}
        _ => return None,
    }
    Some(OkPacket {
        affected_rows: r.lenenc_int()?,
        last_insert_id: r.lenenc_int()?,
        status: r.u16_le()?,
        warnings: r.u16_le()?,
    })
}

/// A parsed EOF packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EofPacket {
    /// Warning count.
    pub warnings: u16,
    /// Server status flags.
    pub status: u16,
}

/// Parses an EOF payload (header 0xFE, less than 9 bytes).
pub fn parse_eof(payload: &[u8]) -> Option<EofPacket> {
    if payload.len() >= 9 {
        return None;
    }
    let mut r = Reader::new(payload);
    if r.u8()? != 0xfe {
        return None;
    }
    Some(EofPacket {
        warnings: r.u16_le()?,
        status: r.u16_le()?,
    })
}

/// MySQL column types the proxy uses when it answers a query itself.
pub mod column_type {
    /// `BIGINT`.
    pub const MYSQL_TYPE_LONGLONG: u8 = 0x08;
    /// `VARCHAR`.
    pub const MYSQL_TYPE_VAR_STRING: u8 = 0xfd;
}

/// A column definition (<https://mariadb.com/kb/en/result-set-packets/#column-definition-packet>).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnDefinition<'a> {
    /// Database.
    pub schema: &'a [u8],
    /// Table alias.
    pub table: &'a [u8],
    /// Table.
    pub org_table: &'a [u8],
    /// Column alias.
    pub name: &'a [u8],
    /// Column.
    pub org_name: &'a [u8],
    /// Collation id.
    pub charset: u16,
    /// Maximum display length.
    pub length: u32,
    /// Column type.
    pub column_type: u8,
    /// Column flags.
    pub flags: u16,
    /// Decimals.
    pub decimals: u8,
}

impl ColumnDefinition<'_> {
    /// Appends the payload (no header).
    pub fn write(&self, out: &mut Vec<u8>) {
        put_lenenc_bytes(out, b"def");
        for s in [
            self.schema,
            self.table,
            self.org_table,
            self.name,
            self.org_name,
        ] {
            put_lenenc_bytes(out, s);
        }
        out.push(0x0c);
        out.extend_from_slice(&self.charset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.push(self.column_type);
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.push(self.decimals);
        out.extend_from_slice(&[0, 0]);
    }
}

/// Appends a text-protocol row payload (no header): each value as a
/// length-encoded string, NULL as 0xFB.
pub fn write_text_row(out: &mut Vec<u8>, values: &[Option<&[u8]>]) {
    for v in values {
        match v {
            Some(b) => put_lenenc_bytes(out, b),
            None => out.push(0xfb),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{parse_header, HEADER_LEN};

    #[test]
    fn err_round_trips() {
        let mut out = Vec::new();
        let next = write_err(
            &mut out,
            3,
            ErrorCode::ER_ACCESS_DENIED_ERROR,
            "Access denied for user 'x'",
        );
        assert_eq!(next, 4);
        let h = parse_header(&out).unwrap();
        assert_eq!((h.len, h.seq), (out.len() - HEADER_LEN, 3));
        let e = parse_err(&out[HEADER_LEN..]).unwrap();
        assert_eq!(e.code, 1045);
        assert_eq!(e.sqlstate, Some(&b"28000"[..]));
        assert_eq!(e.message, b"Access denied for user 'x'");
        // A pre-4.1 ERR (no '#') still parses.
        assert_eq!(
            parse_err(b"\xff\x69\x04Host blocked"),
            Some(ErrPacket {
                code: 1129,
                sqlstate: None,
                message: b"Host blocked"
            })
        );
        for cut in 0..3 {
            assert_eq!(parse_err(&out[HEADER_LEN..HEADER_LEN + cut]), None);
        }
    }

    #[test]
    fn err_message_is_cut_at_a_char_boundary() {
        let long = "é".repeat(400);
        let mut out = Vec::new();
        write_err(&mut out, 0, ErrorCode::ER_UNKNOWN_ERROR, &long);
        let e = parse_err(&out[HEADER_LEN..]).unwrap();
        assert!(e.message.len() <= MAX_ERR_MESSAGE);
        assert!(std::str::from_utf8(e.message).is_ok());
    }

    #[test]
    fn ok_and_eof_round_trip() {
        let mut out = Vec::new();
        assert_eq!(write_ok(&mut out, 1, 300, 1 << 40, 0x4002, 7), 2);
        let ok = parse_ok(&out[HEADER_LEN..]).unwrap();
        assert_eq!(
            ok,
            OkPacket {
                affected_rows: 300,
                last_insert_id: 1 << 40,
                status: 0x4002,
                warnings: 7
            }
        );
        for cut in 0..out.len() - HEADER_LEN {
            assert_eq!(parse_ok(&out[HEADER_LEN..HEADER_LEN + cut]), None);
        }
        let mut out = Vec::new();
        write_eof(&mut out, 5, 1, 0x22);
        assert_eq!(out, [5, 0, 0, 5, 0xfe, 1, 0, 0x22, 0]);
        assert_eq!(
            parse_eof(&out[HEADER_LEN..]),
            Some(EofPacket {
                warnings: 1,
                status: 0x22
            })
        );
        assert_eq!(parse_ok(&out[HEADER_LEN..]), None);
        let mut out = Vec::new();
        write_result_end(&mut out, 5, true, 0x22, 1);
        let ok = parse_ok(&out[HEADER_LEN..]).unwrap();
        assert_eq!((ok.status, ok.warnings), (0x22, 1));
    }

    #[test]
    fn error_codes_have_five_character_states() {
        for c in [
            ErrorCode::ER_ACCESS_DENIED_ERROR,
            ErrorCode::ER_HANDSHAKE_ERROR,
            ErrorCode::ER_UNKNOWN_COM_ERROR,
            ErrorCode::ER_NET_PACKET_TOO_LARGE,
            ErrorCode::ER_NET_PACKETS_OUT_OF_ORDER,
            ErrorCode::ER_SPECIFIC_ACCESS_DENIED_ERROR,
            ErrorCode::ER_SERVER_SHUTDOWN,
            ErrorCode::ER_NOT_SUPPORTED_AUTH_MODE,
            ErrorCode::ER_NOT_SUPPORTED_YET,
            ErrorCode::ER_BAD_DB_ERROR,
            ErrorCode::CR_CONN_HOST_ERROR,
            ErrorCode::CR_SERVER_LOST,
        ] {
            assert_eq!(c.sqlstate.len(), 5, "{c:?}");
        }
    }
}
