//! The connection phase: the server's greeting, the client's handshake
//! response (and SSL request), the auth switch request, and connection
//! attributes.
//!
//! Protocol page: <https://mariadb.com/kb/en/connection/>. Only protocol
//! version 10 and the 4.1 (`CLIENT_PROTOCOL_41`) response are spoken; every
//! client and server of the last fifteen years uses them.

use std::fmt;

use super::auth::NATIVE_PASSWORD;
use super::consts::caps::*;
use super::packet::parse_err;
use super::reader::{put_lenenc_bytes, Reader};

/// Why a handshake packet cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// The packet ended inside the named field.
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A greeting with a protocol version other than 10.
    UnsupportedProtocol(u8),
    /// The server sent an ERR packet instead of a greeting.
    ServerError {
        /// The error number.
        code: u16,
        /// The message, lossily decoded.
        message: String,
    },
    /// The client speaks the pre-4.1 protocol.
    Protocol320Unsupported,
    /// The connection attributes are not a list of key/value strings.
    BadAttributes,
    /// The packet is not an auth switch request (header 0xFE).
    NotAuthSwitch,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Truncated { field } => {
                write!(f, "handshake packet truncated in {field}")
            }
            HandshakeError::UnsupportedProtocol(v) => {
                write!(f, "unsupported protocol version {v} (only 10)")
            }
            HandshakeError::ServerError { code, message } => {
                write!(f, "server refused the connection: {code} {message}")
            }
            HandshakeError::Protocol320Unsupported => {
                f.write_str("client uses the pre-4.1 protocol (CLIENT_PROTOCOL_41 not set)")
            }
            HandshakeError::BadAttributes => f.write_str("malformed connection attributes"),
            HandshakeError::NotAuthSwitch => f.write_str("not an auth switch request"),
        }
    }
}

impl std::error::Error for HandshakeError {}

fn t(field: &'static str) -> HandshakeError {
    HandshakeError::Truncated { field }
}

/// The server's first packet (Initial Handshake Packet, protocol 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Greeting<'a> {
    /// e.g. `5.5.5-10.11.6-MariaDB-0+deb12u1` (MariaDB prefixes `5.5.5-`).
    pub server_version: &'a [u8],
    /// The server's connection id.
    pub connection_id: u32,
    /// The 20-byte challenge (parts 1 and 2 joined).
    pub scramble: [u8; 20],
    /// Server capabilities (lower and upper halves joined).
    pub capabilities: u32,
    /// MariaDB's extended capabilities ([`crate::protocol::consts::mariadb`]);
    /// 0 unless `capabilities` has bit 0 (`CLIENT_MYSQL`) clear.
    pub mariadb_capabilities: u32,
    /// Default collation id.
    pub charset: u8,
    /// Server status flags.
    pub status: u16,
    /// The default authentication plugin; `mysql_native_password` when the
    /// server names none.
    pub auth_plugin: &'a [u8],
}

impl<'a> Greeting<'a> {
    /// Parses a greeting payload. An ERR packet in its place (e.g. "Host
    /// blocked", "Too many connections") is [`HandshakeError::ServerError`].
    pub fn parse(payload: &'a [u8]) -> Result<Greeting<'a>, HandshakeError> {
        let mut r = Reader::new(payload);
        match r.u8().ok_or(t("protocol version"))? {
            10 => {}
            0xff => {
                let e = parse_err(payload).ok_or(t("error packet"))?;
                return Err(HandshakeError::ServerError {
                    code: e.code,
                    message: String::from_utf8_lossy(e.message).into_owned(),
                });
            }
            v => return Err(HandshakeError::UnsupportedProtocol(v)),
        }
        let server_version = r.null_terminated().ok_or(t("server version"))?;
        let connection_id = r.u32_le().ok_or(t("connection id"))?;
        let mut scramble = [0u8; 20];
        scramble[..8].copy_from_slice(r.bytes(8).ok_or(t("scramble"))?);
        r.skip(1).ok_or(t("filler"))?;
        let caps_low = r.u16_le().ok_or(t("capabilities"))?;
        let charset = r.u8().ok_or(t("charset"))?;
        let status = r.u16_le().ok_or(t("status"))?;
        let caps_high = r.u16_le().ok_or(t("capabilities"))?;
        let capabilities = u32::from(caps_low) | u32::from(caps_high) << 16;
        let auth_data_len = r.u8().ok_or(t("auth data length"))?;
        // 6 bytes filler, then MariaDB's extended capabilities (or zeros).
        r.skip(6).ok_or(t("reserved"))?;
        let extended = r.u32_le().ok_or(t("reserved"))?;
        let mariadb_capabilities = mariadb_only(capabilities, extended);
        // Part 2 of the scramble: max(13, auth_data_len - 8) bytes, i.e. 12
        // bytes and a NUL. Read whenever present: the proxy has no use for a
        // greeting without it (pre-4.1 servers).
        scramble[8..].copy_from_slice(r.bytes(12).ok_or(t("scramble"))?);
        let part2 = if capabilities & CLIENT_PLUGIN_AUTH != 0 {
            usize::from(auth_data_len).saturating_sub(8).max(13)
        } else {
            13
        };
        if part2 == 13 {
            // Some servers leave out the NUL; a scramble byte is never 0.
            if r.peek() == Some(0) {
                r.skip(1);
            }
        } else {
            r.skip(part2 - 12).ok_or(t("scramble"))?;
        }
        let mut auth_plugin = NATIVE_PASSWORD;
        if capabilities & CLIENT_PLUGIN_AUTH != 0 && !r.is_empty() {
            // MySQL 5.5.7-5.5.9 sent the name without its NUL.
            let name = match r.clone().null_terminated() {
                Some(n) => n,
                None => r.rest(),
            };
            if !name.is_empty() {
                auth_plugin = name;
            }
        }
        Ok(Greeting {
            server_version,
            connection_id,
            scramble,
            capabilities,
            mariadb_capabilities,
            charset,
            status,
            auth_plugin,
        })
    }

    /// Appends the payload (no header). The plugin name is written only with
    /// `CLIENT_PLUGIN_AUTH`; scramble part 2 always (12 bytes and a NUL).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(10);
        out.extend_from_slice(self.server_version);
        out.push(0);
        out.extend_from_slice(&self.connection_id.to_le_bytes());
        out.extend_from_slice(&self.scramble[..8]);
        out.push(0);
        out.extend_from_slice(&(self.capabilities as u16).to_le_bytes());
        out.push(self.charset);
        out.extend_from_slice(&self.status.to_le_bytes());
        out.extend_from_slice(&((self.capabilities >> 16) as u16).to_le_bytes());
        let plugin = self.capabilities & CLIENT_PLUGIN_AUTH != 0;
        out.push(if plugin { 21 } else { 0 });
        out.extend_from_slice(&[0u8; 6]);
        let extended = mariadb_only(self.capabilities, self.mariadb_capabilities);
        out.extend_from_slice(&extended.to_le_bytes());
        out.extend_from_slice(&self.scramble[8..]);
        out.push(0);
        if plugin {
            out.extend_from_slice(self.auth_plugin);
            out.push(0);
        }
    }
}

/// MariaDB's extended capabilities count only while bit 0 (`CLIENT_MYSQL`)
/// is clear: with it set, the bytes that carry them are filler.
fn mariadb_only(capabilities: u32, extended: u32) -> u32 {
    if capabilities & CLIENT_MYSQL == 0 {
        extended
    } else {
        0
    }
}

/// Whether a client's first packet is an SSL request: the 32 fixed bytes of
/// a handshake response with `CLIENT_SSL`, after which the client starts TLS.
pub fn is_ssl_request(payload: &[u8]) -> bool {
    payload.len() == RESPONSE_FIXED
        && Reader::new(payload)
            .u32_le()
            .is_some_and(|c| c & CLIENT_SSL != 0)
}

/// The client's handshake response (protocol 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeResponse<'a> {
    /// Client capabilities.
    pub capabilities: u32,
    /// MariaDB's extended capabilities ([`crate::protocol::consts::mariadb`]);
    /// 0 unless `capabilities` has bit 0 (`CLIENT_MYSQL`) clear.
    pub mariadb_capabilities: u32,
    /// The client's max packet size.
    pub max_packet: u32,
    /// Collation id.
    pub charset: u8,
    /// User name.
    pub username: &'a [u8],
    /// The auth plugin's response to the scramble.
    pub auth_response: &'a [u8],
    /// Initial database (`CLIENT_CONNECT_WITH_DB`).
    pub database: Option<&'a [u8]>,
    /// The plugin the response is for (`CLIENT_PLUGIN_AUTH`).
    pub auth_plugin: Option<&'a [u8]>,
    /// The raw key/value block of connection attributes, without its
    /// length prefix (`CLIENT_CONNECT_ATTRS`). Read it with [`attributes`].
    pub attributes: Option<&'a [u8]>,
}

/// Bytes of the fixed part: capabilities, max packet, charset, 23 filler.
const RESPONSE_FIXED: usize = 4 + 4 + 1 + 23;

impl<'a> HandshakeResponse<'a> {
    /// Parses a handshake response payload.
    ///
    /// The optional fields at the end (database, plugin, attributes) are
    /// `None` when their flag is off or when the packet ends before them, as
    /// the servers accept; bytes after the attributes (MySQL 8's zstd level)
    /// are ignored.
    pub fn parse(payload: &'a [u8]) -> Result<HandshakeResponse<'a>, HandshakeError> {
        let mut r = Reader::new(payload);
        let low = r.u16_le().ok_or(t("capabilities"))?;
        if u32::from(low) & CLIENT_PROTOCOL_41 == 0 {
            return Err(HandshakeError::Protocol320Unsupported);
        }
        let high = r.u16_le().ok_or(t("capabilities"))?;
        let capabilities = u32::from(low) | u32::from(high) << 16;
        let max_packet = r.u32_le().ok_or(t("max packet"))?;
        let charset = r.u8().ok_or(t("charset"))?;
        // 19 filler bytes and MariaDB's extended capabilities.
        r.skip(19).ok_or(t("filler"))?;
        let extended = r.u32_le().ok_or(t("filler"))?;
        let mariadb_capabilities = mariadb_only(capabilities, extended);
        let username = r.null_terminated().ok_or(t("username"))?;
        let auth_response = if capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            r.lenenc_bytes()
        } else if capabilities & CLIENT_SECURE_CONNECTION != 0 {
            r.u8().and_then(|n| r.bytes(usize::from(n)))
        } else {
            r.null_terminated()
        }
        .ok_or(t("auth response"))?;
        let mut database = None;
        if capabilities & CLIENT_CONNECT_WITH_DB != 0 && !r.is_empty() {
            database = Some(r.null_terminated().ok_or(t("database"))?);
        }
        let mut auth_plugin = None;
        if capabilities & CLIENT_PLUGIN_AUTH != 0 && !r.is_empty() {
            auth_plugin = Some(r.null_terminated().ok_or(t("auth plugin"))?);
        }
        let mut attrs = None;
        if capabilities & CLIENT_CONNECT_ATTRS != 0 && !r.is_empty() {
            let block = r.lenenc_bytes().ok_or(t("attributes"))?;
            if !attributes_valid(block) {
                return Err(HandshakeError::BadAttributes);
            }
            attrs = Some(block);
        }
        Ok(HandshakeResponse {
            capabilities,
            mariadb_capabilities,
            max_packet,
            charset,
            username,
            auth_response,
            database,
            auth_plugin,
            attributes: attrs,
        })
    }

    /// The capabilities [`HandshakeResponse::write`] puts on the wire: the
    /// given ones with PROTOCOL_41 and SECURE_CONNECTION set, CONNECT_WITH_DB,
    /// PLUGIN_AUTH and CONNECT_ATTRS set exactly when their field is `Some`,
    /// and PLUGIN_AUTH_LENENC_CLIENT_DATA added when the auth response is
    /// longer than 255 bytes, and bit 0 (`CLIENT_MYSQL`) cleared when MariaDB
    /// extended capabilities are given. So the bytes always agree with the
    /// fields.
    pub fn wire_capabilities(&self) -> u32 {
        let mut c = self.capabilities | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION;
        if self.mariadb_capabilities != 0 {
            c &= !CLIENT_MYSQL;
        }
        for (flag, on) in [
            (CLIENT_CONNECT_WITH_DB, self.database.is_some()),
            (CLIENT_PLUGIN_AUTH, self.auth_plugin.is_some()),
            (CLIENT_CONNECT_ATTRS, self.attributes.is_some()),
        ] {
            if on {
                c |= flag;
            } else {
                c &= !flag;
            }
        }
        if self.auth_response.len() > 255 {
            c |= CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
        }
        c
    }

    /// Appends the payload (no header), with [`Self::wire_capabilities`].
    /// Names must not contain NUL bytes (parsed ones never do).
    pub fn write(&self, out: &mut Vec<u8>) {
        let caps = self.wire_capabilities();
        out.extend_from_slice(&caps.to_le_bytes());
        out.extend_from_slice(&self.max_packet.to_le_bytes());
        out.push(self.charset);
        out.extend_from_slice(&[0u8; 19]);
        let extended = mariadb_only(caps, self.mariadb_capabilities);
        out.extend_from_slice(&extended.to_le_bytes());
        out.extend_from_slice(self.username);
        out.push(0);
        if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            put_lenenc_bytes(out, self.auth_response);
        } else {
            out.push(self.auth_response.len() as u8);
            out.extend_from_slice(self.auth_response);
        }
        for s in [self.database, self.auth_plugin].into_iter().flatten() {
            out.extend_from_slice(s);
            out.push(0);
        }
        if let Some(a) = self.attributes {
            put_lenenc_bytes(out, a);
        }
    }
}

/// The server asks the client to authenticate with another plugin
/// (<https://mariadb.com/kb/en/connection/#authentication-switch-request>).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthSwitchRequest<'a> {
    /// The plugin to switch to.
    pub plugin: &'a [u8],
    /// Its data (for mysql_native_password the new 20-byte scramble), without
    /// the trailing NUL.
    pub data: &'a [u8],
}

impl<'a> AuthSwitchRequest<'a> {
    /// Parses an auth switch payload (header 0xFE). A bare 0xFE is the old
    /// request to switch to `mysql_old_password`.
    pub fn parse(payload: &'a [u8]) -> Result<AuthSwitchRequest<'a>, HandshakeError> {
        let mut r = Reader::new(payload);
        if r.u8() != Some(0xfe) {
            return Err(HandshakeError::NotAuthSwitch);
        }
        if r.is_empty() {
            return Ok(AuthSwitchRequest {
                plugin: b"mysql_old_password",
                data: b"",
            });
        }
        let plugin = r.null_terminated().ok_or(t("plugin name"))?;
        let data = r.rest();
        let data = data.strip_suffix(&[0]).unwrap_or(data);
        Ok(AuthSwitchRequest { plugin, data })
    }

    /// Appends the payload (no header).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(0xfe);
        out.extend_from_slice(self.plugin);
        out.push(0);
        out.extend_from_slice(self.data);
        out.push(0);
    }
}

/// Iterator over the key/value pairs of a connection attribute block. Stops
/// at the first malformed pair; [`attributes_valid`] tells whether there is
/// one.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let mut r = self.r.clone();
        let pair = (r.lenenc_bytes()?, r.lenenc_bytes()?);
        self.r = r;
        Some(pair)
    }
}

/// The key/value pairs of an attribute block (without its length prefix).
pub fn attributes(block: &[u8]) -> Attributes<'_> {
    Attributes {
        r: Reader::new(block),
    }
}

/// Whether an attribute block is exactly a list of lenenc key/value pairs.
pub fn attributes_valid(block: &[u8]) -> bool {
    let mut it = attributes(block);
    for _ in it.by_ref() {}
    it.r.is_empty()
}

/// Appends one key/value pair to an attribute block (without its length
/// prefix), e.g. `_proxy` = `dbrouter` when logging into a backend.
pub fn append_attribute(block: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    put_lenenc_bytes(block, key);
    put_lenenc_bytes(block, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::consts::mariadb::MARIADB_CLIENT_CACHE_METADATA;

    /// A greeting captured from MariaDB 10.11 (payload only).
    pub(crate) fn mariadb_greeting() -> Vec<u8> {
        let mut g = vec![10];
        g.extend_from_slice(b"5.5.5-10.11.6-MariaDB-0+deb12u1\0");
        g.extend_from_slice(&42u32.to_le_bytes());
        g.extend_from_slice(b"abcdefgh\0");
        g.extend_from_slice(&0xf7feu16.to_le_bytes()); // bit 0 clear: MariaDB
        g.push(45);
        g.extend_from_slice(&2u16.to_le_bytes());
        g.extend_from_slice(&0x81bfu16.to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x1d, 0, 0, 0]);
        g.extend_from_slice(b"ijklmnopqrst\0");
        g.extend_from_slice(b"mysql_native_password\0");
        g
    }

    #[test]
    fn greeting_parses_and_round_trips() {
        let p = mariadb_greeting();
        let g = Greeting::parse(&p).unwrap();
        assert_eq!(g.server_version, b"5.5.5-10.11.6-MariaDB-0+deb12u1");
        assert_eq!(g.connection_id, 42);
        assert_eq!(&g.scramble, b"abcdefghijklmnopqrst");
        assert_eq!(g.capabilities, 0x81bf_f7fe);
        assert_eq!((g.charset, g.status), (45, 2));
        assert_eq!(g.auth_plugin, NATIVE_PASSWORD);
        assert_eq!(g.mariadb_capabilities, 0x1d);
        let mut out = Vec::new();
        g.write(&mut out);
        assert_eq!(out, p);
        // With bit 0 set the same bytes are filler: not read, not written.
        let mysql = Greeting {
            capabilities: g.capabilities | CLIENT_MYSQL,
            ..g
        };
        let mut out = Vec::new();
        mysql.write(&mut out);
        let back = Greeting::parse(&out).unwrap();
        assert_eq!(back.mariadb_capabilities, 0);
        assert_eq!(out[out.len() - 39..out.len() - 35], [0; 4]);
    }

    #[test]
    fn greeting_truncations_fail_cleanly() {
        let p = mariadb_greeting();
        // The plugin name may be cut (old servers): anything before it is an error.
        let plugin_at = p.len() - NATIVE_PASSWORD.len() - 1;
        for cut in 0..plugin_at - 1 {
            assert!(
                matches!(
                    Greeting::parse(&p[..cut]),
                    Err(HandshakeError::Truncated { .. })
                ),
                "cut {cut}"
            );
        }
        // Without the NUL after scramble part 2, and without a plugin name.
        assert_eq!(
            Greeting::parse(&p[..plugin_at - 1]).unwrap().auth_plugin,
            NATIVE_PASSWORD
        );
        assert_eq!(
            Greeting::parse(&p[..plugin_at]).unwrap().auth_plugin,
            NATIVE_PASSWORD
        );
        assert_eq!(
            Greeting::parse(&p[..p.len() - 1]).unwrap().auth_plugin,
            NATIVE_PASSWORD
        );
    }

    #[test]
    fn greeting_err_is_a_server_error() {
        let e = Greeting::parse(b"\xff\x69\x04Host '10.0.0.1' is blocked").unwrap_err();
        assert_eq!(
            e,
            HandshakeError::ServerError {
                code: 1129,
                message: "Host '10.0.0.1' is blocked".into()
            }
        );
        assert_eq!(
            Greeting::parse(b"\x09abc"),
            Err(HandshakeError::UnsupportedProtocol(9))
        );
    }

    fn response(caps: u32) -> HandshakeResponse<'static> {
        HandshakeResponse {
            capabilities: caps,
            mariadb_capabilities: 0,
            max_packet: 16 << 20,
            charset: 45,
            username: b"app",
            auth_response: b"01234567890123456789",
            database: Some(b"shop"),
            auth_plugin: Some(NATIVE_PASSWORD),
            attributes: Some(b"\x04_pid\x0512345\x0c_client_name\x0alibmariadb"),
        }
    }

    #[test]
    fn response_round_trips_in_every_auth_form() {
        let base =
            CLIENT_PROTOCOL_41 | CLIENT_LONG_PASSWORD | CLIENT_TRANSACTIONS | CLIENT_MULTI_RESULTS;
        for extra in [0, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA] {
            let r = response(base | extra);
            let mut out = Vec::new();
            r.write(&mut out);
            let back = HandshakeResponse::parse(&out).unwrap();
            assert_eq!(back.capabilities, r.wire_capabilities());
            assert_eq!(
                HandshakeResponse {
                    capabilities: r.capabilities,
                    ..back
                },
                HandshakeResponse {
                    capabilities: r.capabilities,
                    ..r
                }
            );
            let attrs: Vec<_> = attributes(back.attributes.unwrap()).collect();
            assert_eq!(
                attrs,
                [
                    (&b"_pid"[..], &b"12345"[..]),
                    (b"_client_name", b"libmariadb")
                ]
            );
        }
        // A long auth response forces the lenenc form.
        let long = [7u8; 300];
        let r = HandshakeResponse {
            auth_response: &long,
            database: None,
            ..response(base)
        };
        let mut out = Vec::new();
        r.write(&mut out);
        let back = HandshakeResponse::parse(&out).unwrap();
        assert_eq!(back.auth_response, &long[..]);
        assert_eq!(back.database, None);
        assert_eq!(back.capabilities & CLIENT_CONNECT_WITH_DB, 0);
    }

    #[test]
    fn response_with_nul_terminated_auth() {
        // Neither SECURE_CONNECTION nor LENENC: the response ends at a NUL.
        let mut p = Vec::new();
        p.extend_from_slice(&(CLIENT_PROTOCOL_41 | CLIENT_CONNECT_WITH_DB).to_le_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 8]);
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(b"root\0abc\0db\0");
        let r = HandshakeResponse::parse(&p).unwrap();
        assert_eq!(
            (r.username, r.auth_response, r.database),
            (&b"root"[..], &b"abc"[..], Some(&b"db"[..]))
        );
    }

    #[test]
    fn response_truncations_and_refusals() {
        let r = response(CLIENT_PROTOCOL_41);
        let mut out = Vec::new();
        r.write(&mut out);
        let user_end = RESPONSE_FIXED + 4;
        for cut in 0..out.len() {
            match HandshakeResponse::parse(&out[..cut]) {
                // Cut right after a field: the later optional ones are absent.
                Ok(p) => assert!(cut > user_end && p.attributes.is_none(), "cut {cut}"),
                Err(e) => assert!(
                    matches!(
                        e,
                        HandshakeError::Truncated { .. } | HandshakeError::Protocol320Unsupported
                    ),
                    "cut {cut}: {e}"
                ),
            }
        }
        let mut old = out.clone();
        old[1] &= !((CLIENT_PROTOCOL_41 >> 8) as u8);
        assert_eq!(
            HandshakeResponse::parse(&old),
            Err(HandshakeError::Protocol320Unsupported)
        );
        // An attribute block whose last value runs past its end.
        let bad = HandshakeResponse {
            attributes: Some(b"\x01k\x05v"),
            ..r
        };
        let mut out = Vec::new();
        bad.write(&mut out);
        assert_eq!(
            HandshakeResponse::parse(&out),
            Err(HandshakeError::BadAttributes)
        );
    }

    #[test]
    fn ssl_request_is_recognised() {
        let mut p = (CLIENT_PROTOCOL_41 | CLIENT_SSL).to_le_bytes().to_vec();
        p.resize(32, 0);
        assert!(is_ssl_request(&p));
        p[1] = 0;
        assert!(!is_ssl_request(&p));
        let r = response(CLIENT_PROTOCOL_41 | CLIENT_SSL);
        let mut out = Vec::new();
        r.write(&mut out);
        assert!(!is_ssl_request(&out));
    }

    #[test]
    fn auth_switch_round_trips() {
        let p = b"\xfemysql_native_password\0abcdefghijklmnopqrst\0";
        let a = AuthSwitchRequest::parse(p).unwrap();
        assert_eq!(
            (a.plugin, a.data),
            (NATIVE_PASSWORD, &b"abcdefghijklmnopqrst"[..])
        );
        let mut out = Vec::new();
        a.write(&mut out);
        assert_eq!(out, p);
        assert_eq!(
            AuthSwitchRequest::parse(b"\x00"),
            Err(HandshakeError::NotAuthSwitch)
        );
        assert_eq!(
            AuthSwitchRequest::parse(b"\xfeabc"),
            Err(HandshakeError::Truncated {
                field: "plugin name"
            })
        );
        assert_eq!(
            AuthSwitchRequest::parse(b"\xfe").unwrap().plugin,
            b"mysql_old_password"
        );
    }

    #[test]
    fn append_attribute_keeps_the_block_valid() {
        let mut block = b"\x04_pid\x0512345".to_vec();
        append_attribute(&mut block, b"_proxy", b"dbrouter");
        assert!(attributes_valid(&block));
        assert_eq!(
            attributes(&block).last(),
            Some((&b"_proxy"[..], &b"dbrouter"[..]))
        );
        assert!(attributes_valid(b""));
        assert!(!attributes_valid(b"\x01k"));
    }

    #[test]
    fn response_carries_mariadb_capabilities_only_with_bit_0_clear() {
        let r = HandshakeResponse {
            mariadb_capabilities: MARIADB_CLIENT_CACHE_METADATA,
            ..response(CLIENT_PROTOCOL_41 | CLIENT_MYSQL)
        };
        assert_eq!(r.wire_capabilities() & CLIENT_MYSQL, 0);
        let mut out = Vec::new();
        r.write(&mut out);
        assert_eq!(out[28..32], MARIADB_CLIENT_CACHE_METADATA.to_le_bytes());
        let back = HandshakeResponse::parse(&out).unwrap();
        assert_eq!(back.mariadb_capabilities, MARIADB_CLIENT_CACHE_METADATA);
        // The same bytes under bit 0 are filler.
        out[0] |= CLIENT_MYSQL as u8;
        assert_eq!(
            HandshakeResponse::parse(&out).unwrap().mariadb_capabilities,
            0
        );
        let plain = response(CLIENT_PROTOCOL_41 | CLIENT_MYSQL);
        let mut out = Vec::new();
        plain.write(&mut out);
        assert_eq!(out[28..32], [0; 4]);
    }
}

/// Packets captured from MariaDB 10.11 and its clients (`fuzz/capture_mariadb.py`).
#[cfg(test)]
mod captured {
    use super::*;
    use crate::protocol::consts::mariadb::MARIADB_CLIENT_CACHE_METADATA;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("src/protocol/testdata/mariadb")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn mariadb_greetings() {
        for name in ["greeting.bin", "cli.greeting.bin"] {
            let p = fixture(name);
            let g = Greeting::parse(&p).unwrap();
            assert!(g.server_version.starts_with(b"5.5.5-10.11."), "{name}");
            assert_eq!(g.auth_plugin, NATIVE_PASSWORD);
            assert!(g.scramble.iter().all(|b| (0x21..=0x7e).contains(b)));
            // MariaDB clears bit 0 and offers its extended capabilities.
            assert_eq!(g.capabilities & CLIENT_MYSQL, 0);
            assert_ne!(g.mariadb_capabilities, 0);
            let mut out = Vec::new();
            g.write(&mut out);
            assert_eq!(Greeting::parse(&out), Ok(g));
        }
    }

    #[test]
    fn client_handshake_responses() {
        // The mariadb CLI and the mysql crate both clear bit 0 towards a
        // MariaDB greeting (they use its extended capabilities).
        for name in [
            "cli.handshake_response.bin",
            "mysql-crate.handshake_response.bin",
        ] {
            let p = fixture(name);
            let r = HandshakeResponse::parse(&p).unwrap();
            assert_eq!(r.username, b"app", "{name}");
            assert_eq!(r.auth_response.len(), 20);
            assert_eq!(r.database, Some(&b"shop"[..]));
            assert_eq!(r.auth_plugin, Some(NATIVE_PASSWORD));
            assert_eq!(r.capabilities & CLIENT_MYSQL, 0);
            assert_ne!(r.mariadb_capabilities & MARIADB_CLIENT_CACHE_METADATA, 0);
            let attrs: Vec<_> = attributes(r.attributes.unwrap()).collect();
            assert!(
                attrs.iter().any(|(k, _)| *k == b"_client_name"),
                "{attrs:?}"
            );
            let mut out = Vec::new();
            r.write(&mut out);
            let back = HandshakeResponse::parse(&out).unwrap();
            assert_eq!(
                HandshakeResponse {
                    capabilities: r.capabilities,
                    ..back
                },
                r
            );
        }
        let ours = fixture("handshake_response.bin");
        let r = HandshakeResponse::parse(&ours).unwrap();
        assert_eq!(r.capabilities & CLIENT_MYSQL, CLIENT_MYSQL);
        assert_eq!(r.mariadb_capabilities, 0);
        let mut out = Vec::new();
        r.write(&mut out);
        assert_eq!(out, ours);
    }

    #[test]
    fn change_user_auth_switch() {
        let a = fixture("auth_switch.bin");
        let s = AuthSwitchRequest::parse(&a).unwrap();
        assert_eq!(s.plugin, NATIVE_PASSWORD);
        assert_eq!(s.data.len(), 20);
    }
}
