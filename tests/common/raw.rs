//! A small raw-socket MySQL client: packet framing, the v10 greeting, a
//! mysql_native_password login (with auth switch), and whole replies to
//! text commands. For commands the `mysql` crate does not expose
//! (COM_STATISTICS, COM_FIELD_LIST, unknown command bytes) and for sending
//! bad input on purpose.
//!
//! Protocol reference: <https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html>
//! and <https://mariadb.com/kb/en/clientserver-protocol/>.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

pub const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
pub const CLIENT_FOUND_ROWS: u32 = 0x0000_0002;
pub const CLIENT_LONG_FLAG: u32 = 0x0000_0004;
pub const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
pub const CLIENT_LOCAL_FILES: u32 = 0x0000_0080;
pub const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
pub const CLIENT_SSL: u32 = 0x0000_0800;
pub const CLIENT_TRANSACTIONS: u32 = 0x0000_2000;
pub const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
pub const CLIENT_MULTI_STATEMENTS: u32 = 0x0001_0000;
pub const CLIENT_MULTI_RESULTS: u32 = 0x0002_0000;
pub const CLIENT_PS_MULTI_RESULTS: u32 = 0x0004_0000;
pub const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;

/// What this client announces by default (no DEPRECATE_EOF: classic EOFs).
pub const DEFAULT_CAPS: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH;

pub const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

pub const COM_QUIT: u8 = 0x01;
pub const COM_INIT_DB: u8 = 0x02;
pub const COM_QUERY: u8 = 0x03;
pub const COM_FIELD_LIST: u8 = 0x04;
pub const COM_STATISTICS: u8 = 0x09;
pub const COM_PING: u8 = 0x0e;
pub const COM_BINLOG_DUMP: u8 = 0x12;
pub const COM_REGISTER_SLAVE: u8 = 0x15;

/// The server's v10 greeting, the fields the tests look at.
#[derive(Debug, Clone)]
pub struct Greeting {
    pub protocol_version: u8,
    pub server_version: String,
    pub connection_id: u32,
    pub capabilities: u32,
    pub charset: u8,
    pub status: u16,
    /// The 20-byte scramble.
    pub scramble: Vec<u8>,
    pub auth_plugin: String,
}

/// An ERR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrPacket {
    pub code: u16,
    pub sqlstate: String,
    pub message: String,
}

impl ErrPacket {
    /// Parses an ERR packet payload (first byte 0xFF).
    pub fn parse(p: &[u8]) -> Option<ErrPacket> {
        if p.len() < 3 || p[0] != 0xff {
            return None;
        }
        let code = u16::from_le_bytes([p[1], p[2]]);
        let rest = &p[3..];
        let (sqlstate, message) = if rest.first() == Some(&b'#') && rest.len() >= 6 {
            (
                String::from_utf8_lossy(&rest[1..6]).into_owned(),
                &rest[6..],
            )
        } else {
            (String::new(), rest)
        };
        Some(ErrPacket {
            code,
            sqlstate,
            message: String::from_utf8_lossy(message).into_owned(),
        })
    }
}

impl std::fmt::Display for ErrPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ERROR {} ({}): {}",
            self.code, self.sqlstate, self.message
        )
    }
}

/// A whole reply to a text command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok {
        affected_rows: u64,
        status: u16,
    },
    Err(ErrPacket),
    /// Column names and rows (NULL is `None`).
    ResultSet {
        columns: Vec<String>,
        rows: Vec<Vec<Option<Vec<u8>>>>,
    },
}

impl Reply {
    pub fn err(&self) -> Option<&ErrPacket> {
        match self {
            Reply::Err(e) => Some(e),
            _ => None,
        }
    }

    /// The rows as strings (NULL as "NULL"), for comparisons.
    pub fn rows_text(&self) -> Vec<Vec<String>> {
        match self {
            Reply::ResultSet { rows, .. } => rows
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|v| match v {
                            Some(b) => String::from_utf8_lossy(b).into_owned(),
                            None => "NULL".to_string(),
                        })
                        .collect()
                })
                .collect(),
            other => panic!("expected a result set, got {other:?}"),
        }
    }
}

/// SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))).
pub fn native_scramble(password: &str, scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password.as_bytes());
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(stage2);
    let x = h.finalize();
    stage1.iter().zip(x.iter()).map(|(a, b)| a ^ b).collect()
}

/// A length-encoded integer at the start of `p`: (value, bytes used).
pub fn lenenc_int(p: &[u8]) -> Option<(u64, usize)> {
    let first = *p.first()?;
    let take = |n: usize| -> Option<u64> {
        let b = p.get(1..1 + n)?;
        let mut v = 0u64;
        for (i, byte) in b.iter().enumerate() {
            v |= (*byte as u64) << (8 * i);
        }
        Some(v)
    };
    match first {
        0..=0xfa => Some((first as u64, 1)),
        0xfc => Some((take(2)?, 3)),
        0xfd => Some((take(3)?, 4)),
        0xfe => Some((take(8)?, 9)),
        _ => None,
    }
}

/// A length-encoded string at the start of `p`: (bytes or NULL, bytes used).
fn lenenc_str(p: &[u8]) -> Option<(Option<&[u8]>, usize)> {
    if p.first() == Some(&0xfb) {
        return Some((None, 1));
    }
    let (len, n) = lenenc_int(p)?;
    let s = p.get(n..n + len as usize)?;
    Some((Some(s), n + len as usize))
}

/// Builds a HandshakeResponse41 payload.
pub fn handshake_response(
    caps: u32,
    user: &str,
    auth: &[u8],
    db: Option<&str>,
    plugin: &str,
) -> Vec<u8> {
    let caps = if db.is_some() {
        caps | CLIENT_CONNECT_WITH_DB
    } else {
        caps & !CLIENT_CONNECT_WITH_DB
    };
    let mut p = Vec::new();
    p.extend_from_slice(&caps.to_le_bytes());
    p.extend_from_slice(&(16u32 * 1024 * 1024).to_le_bytes());
    p.push(45); // utf8mb4_general_ci
    p.extend_from_slice(&[0u8; 23]);
    p.extend_from_slice(user.as_bytes());
    p.push(0);
    p.push(auth.len() as u8);
    p.extend_from_slice(auth);
    if let Some(db) = db {
        p.extend_from_slice(db.as_bytes());
        p.push(0);
    }
    if caps & CLIENT_PLUGIN_AUTH != 0 {
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
    }
    p
}

/// A raw connection.
pub struct RawClient {
    pub stream: TcpStream,
    pub greeting: Option<Greeting>,
    /// The sequence id the next packet written gets.
    pub seq: u8,
}

impl RawClient {
    /// Connects, without reading anything.
    pub fn connect_only(port: u16) -> io::Result<RawClient> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            stream,
            greeting: None,
            seq: 0,
        })
    }

    /// Connects and reads the greeting.
    pub fn connect(port: u16) -> io::Result<RawClient> {
        let mut c = RawClient::connect_only(port)?;
        let (seq, p) = c.read_packet()?;
        if p.first() == Some(&0xff) {
            let e = ErrPacket::parse(&p);
            return Err(io::Error::other(format!("greeting is an error: {e:?}")));
        }
        c.greeting = Some(parse_greeting(&p).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad greeting {p:?}"))
        })?);
        c.seq = seq.wrapping_add(1);
        Ok(c)
    }

    /// Connects and logs in; panics on any failure.
    pub fn login_to(port: u16, user: &str, password: &str, db: Option<&str>) -> RawClient {
        let mut c = RawClient::connect(port).unwrap_or_else(|e| panic!("connect {port}: {e}"));
        match c.login(user, password, db) {
            Ok(()) => c,
            Err(e) => panic!("raw login as {user} on {port}: {e:?}"),
        }
    }

    pub fn greeting(&self) -> &Greeting {
        self.greeting.as_ref().expect("greeting read")
    }

    /// Sends a native-password HandshakeResponse41 and follows an auth switch.
    /// `Err` carries the server's ERR, or an io error's text as message.
    pub fn login(&mut self, user: &str, password: &str, db: Option<&str>) -> Result<(), ErrPacket> {
        let io_err = |e: io::Error| ErrPacket {
            code: 0,
            sqlstate: String::new(),
            message: format!("io: {e}"),
        };
        let auth = native_scramble(password, &self.greeting().scramble);
        let resp = handshake_response(DEFAULT_CAPS, user, &auth, db, "mysql_native_password");
        self.write_packet(&resp).map_err(io_err)?;
        loop {
            let (_, p) = self.read_packet().map_err(io_err)?;
            match p.first() {
                Some(0x00) => {
                    self.seq = 0;
                    return Ok(());
                }
                Some(0xff) => return Err(ErrPacket::parse(&p).unwrap()),
                Some(0xfe) => {
                    // Auth switch: plugin name NUL, then the new scramble.
                    let rest = &p[1..];
                    let nul = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                    let plugin = String::from_utf8_lossy(&rest[..nul]).into_owned();
                    let mut data = rest.get(nul + 1..).unwrap_or(&[]).to_vec();
                    if data.last() == Some(&0) {
                        data.pop();
                    }
                    if plugin != "mysql_native_password" {
                        return Err(ErrPacket {
                            code: 0,
                            sqlstate: String::new(),
                            message: format!("auth switch to unsupported plugin {plugin}"),
                        });
                    }
                    let auth = native_scramble(password, &data);
                    self.write_packet(&auth).map_err(io_err)?;
                }
                _ => {
                    return Err(ErrPacket {
                        code: 0,
                        sqlstate: String::new(),
                        message: format!("unexpected packet during login: {p:?}"),
                    })
                }
            }
        }
    }

    /// Writes one packet with the current sequence id, then increments it.
    pub fn write_packet(&mut self, payload: &[u8]) -> io::Result<()> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.write_packet_seq(seq, payload)
    }

    /// Writes one packet with the given sequence id (payload < 16 MiB).
    pub fn write_packet_seq(&mut self, seq: u8, payload: &[u8]) -> io::Result<()> {
        assert!(payload.len() < 0xff_ffff, "use write_raw for split packets");
        let mut buf = Vec::with_capacity(payload.len() + 4);
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes()[..3]);
        buf.push(seq);
        buf.extend_from_slice(payload);
        self.stream.write_all(&buf)
    }

    /// Writes bytes as they are, no framing.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one packet: (sequence id, payload). Joins nothing: a 16 MiB
    /// packet and its continuation come back separately.
    pub fn read_packet(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload)?;
        self.seq = header[3].wrapping_add(1);
        Ok((header[3], payload))
    }

    /// Sends a command (sequence id 0) and reads the whole reply, assuming
    /// text-protocol replies (OK, ERR, or result sets; follows
    /// SERVER_MORE_RESULTS_EXISTS and returns the last reply, all kept in
    /// `all`).
    pub fn command(&mut self, payload: &[u8]) -> io::Result<Reply> {
        Ok(self
            .command_all(payload)?
            .pop()
            .expect("at least one reply"))
    }

    /// Like [`command`](RawClient::command), returning every reply of a
    /// multi-result answer.
    pub fn command_all(&mut self, payload: &[u8]) -> io::Result<Vec<Reply>> {
        self.seq = 0;
        self.write_packet(payload)?;
        let mut replies = Vec::new();
        loop {
            let (reply, more) = self.read_reply()?;
            replies.push(reply);
            if !more {
                return Ok(replies);
            }
        }
    }

    /// COM_QUERY with `sql`.
    pub fn query(&mut self, sql: &str) -> io::Result<Reply> {
        let mut p = vec![COM_QUERY];
        p.extend_from_slice(sql.as_bytes());
        self.command(&p)
    }

    /// Reads one reply: (reply, more results follow).
    pub fn read_reply(&mut self) -> io::Result<(Reply, bool)> {
        let (_, p) = self.read_packet()?;
        match p.first() {
            Some(0x00) => {
                let (affected_rows, n1) = lenenc_int(&p[1..]).unwrap_or((0, 1));
                let (_, n2) = lenenc_int(&p[1 + n1..]).unwrap_or((0, 1));
                let at = 1 + n1 + n2;
                let status = p
                    .get(at..at + 2)
                    .map(|s| u16::from_le_bytes([s[0], s[1]]))
                    .unwrap_or(0);
                Ok((
                    Reply::Ok {
                        affected_rows,
                        status,
                    },
                    status & SERVER_MORE_RESULTS_EXISTS != 0,
                ))
            }
            Some(0xff) => Ok((Reply::Err(ErrPacket::parse(&p).unwrap()), false)),
            Some(0xfb) => Err(io::Error::other("LOCAL INFILE request not handled")),
            _ => {
                let (ncols, _) = lenenc_int(&p)
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "column count"))?;
                let mut columns = Vec::new();
                for _ in 0..ncols {
                    let (_, def) = self.read_packet()?;
                    columns.push(column_name(&def).unwrap_or_default());
                }
                let (_, eof) = self.read_packet()?;
                if eof.first() != Some(&0xfe) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("expected EOF after columns, got {eof:?}"),
                    ));
                }
                let mut rows = Vec::new();
                loop {
                    let (_, row) = self.read_packet()?;
                    if row.first() == Some(&0xfe) && row.len() < 9 {
                        let status = row
                            .get(3..5)
                            .map(|s| u16::from_le_bytes([s[0], s[1]]))
                            .unwrap_or(0);
                        return Ok((
                            Reply::ResultSet { columns, rows },
                            status & SERVER_MORE_RESULTS_EXISTS != 0,
                        ));
                    }
                    if row.first() == Some(&0xff) {
                        return Ok((Reply::Err(ErrPacket::parse(&row).unwrap()), false));
                    }
                    let mut values = Vec::with_capacity(columns.len());
                    let mut at = 0;
                    for _ in 0..columns.len() {
                        let (v, n) = lenenc_str(&row[at..])
                            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad row"))?;
                        values.push(v.map(|s| s.to_vec()));
                        at += n;
                    }
                    rows.push(values);
                }
            }
        }
    }

    /// Reads until the peer closes the connection or `timeout` passes.
    /// Returns every packet-ish byte read and whether the connection closed
    /// (EOF or reset) within the time.
    pub fn read_until_closed(&mut self, timeout: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + timeout;
        let mut all = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (all, false);
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return (all, true),
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return (all, false)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return (all, true),
            }
        }
    }
}

/// The payloads of the complete packets in `bytes` (a trailing partial
/// packet is dropped).
pub fn split_packets(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() >= at + 4 {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], 0]) as usize;
        let Some(p) = bytes.get(at + 4..at + 4 + len) else {
            break;
        };
        out.push((bytes[at + 3], p.to_vec()));
        at += 4 + len;
    }
    out
}

/// The name of a column definition packet (catalog, schema, table,
/// org_table, name, ...).
fn column_name(def: &[u8]) -> Option<String> {
    let mut at = 0;
    for _ in 0..4 {
        let (_, n) = lenenc_str(&def[at..])?;
        at += n;
    }
    let (name, _) = lenenc_str(&def[at..])?;
    Some(String::from_utf8_lossy(name.unwrap_or(b"")).into_owned())
}

/// Parses a protocol v10 greeting payload.
pub fn parse_greeting(p: &[u8]) -> Option<Greeting> {
    let protocol_version = *p.first()?;
    let nul = p[1..].iter().position(|&b| b == 0)? + 1;
    let server_version = String::from_utf8_lossy(&p[1..nul]).into_owned();
    let mut at = nul + 1;
    let connection_id = u32::from_le_bytes(p.get(at..at + 4)?.try_into().ok()?);
    at += 4;
    let mut scramble = p.get(at..at + 8)?.to_vec();
    at += 9; // 8 bytes + filler
    let cap_low = u16::from_le_bytes(p.get(at..at + 2)?.try_into().ok()?) as u32;
    at += 2;
    let charset = *p.get(at)?;
    at += 1;
    let status = u16::from_le_bytes(p.get(at..at + 2)?.try_into().ok()?);
    at += 2;
    let cap_high = u16::from_le_bytes(p.get(at..at + 2)?.try_into().ok()?) as u32;
    at += 2;
    let auth_len = *p.get(at)? as usize;
    at += 1 + 10; // reserved (MariaDB keeps extended capabilities in the last 4)
    let part2_len = auth_len.saturating_sub(8).max(13);
    let part2 = p.get(at..at + part2_len)?;
    // The second part ends with a NUL that is not part of the scramble.
    scramble.extend_from_slice(&part2[..part2_len - 1]);
    at += part2_len;
    let rest = p.get(at..).unwrap_or(&[]);
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    Some(Greeting {
        protocol_version,
        server_version,
        connection_id,
        capabilities: cap_low | (cap_high << 16),
        charset,
        status,
        scramble,
        auth_plugin: String::from_utf8_lossy(&rest[..end]).into_owned(),
    })
}
