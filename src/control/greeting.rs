//! What the backend announces about itself, read once at start.
//!
//! The proxy greets its clients with the backend's own version, a capability
//! set derived from the backend's, and its default collation, so that the
//! replies it relays byte for byte mean what the client expects. This module
//! opens one plain connection to the backend, reads its greeting (the Initial
//! Handshake Packet, <https://mariadb.com/kb/en/connection/>) and closes it
//! without logging in.
//!
//! Leaving before logging in counts as an aborted connect on the server
//! (`Aborted_connects`, and one step towards `max_connect_errors` for the
//! proxy's address). Once per start this is harmless: every successful login
//! (the accounts reads, the reactors' backend connections) resets the count.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use log::warn;

use crate::protocol::frame::{parse_header, HEADER_LEN};
use crate::protocol::handshake::Greeting;

/// A greeting is about a hundred bytes; anything far longer is not one.
const MAX_GREETING_LEN: usize = 64 * 1024;

/// The facts of a backend's greeting the proxy repeats to its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// The version text exactly as the backend sends it, MariaDB's `5.5.5-`
    /// prefix included (clients know to strip it).
    pub version: String,
    /// The backend's capability flags (lower and upper halves joined).
    pub capabilities: u32,
    /// MariaDB's extended capabilities (0 from MySQL servers).
    pub mariadb_capabilities: u32,
    /// The backend's default collation id.
    pub charset: u8,
}

/// Connects to `backend`, reads its greeting and closes the connection; the
/// whole exchange takes at most `timeout`.
///
/// `None` (with a warning saying why) when the backend cannot be reached in
/// time, answers with an ERR packet (too many connections, host blocked) or
/// with something that is not a greeting.
pub fn read_server_greeting(backend: SocketAddr, timeout: Duration) -> Option<ServerFacts> {
    match try_read_greeting(backend, timeout) {
        Ok(facts) => Some(facts),
        Err(why) => {
            warn!("cannot read the greeting of {backend}: {why}");
            None
        }
    }
}

fn try_read_greeting(backend: SocketAddr, timeout: Duration) -> Result<ServerFacts, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&backend, timeout).map_err(|e| e.to_string())?;
    let mut header = [0u8; HEADER_LEN];
    read_full(&mut stream, &mut header, deadline)?;
    let header = parse_header(&header).ok_or("short packet header")?;
    if header.len > MAX_GREETING_LEN {
        return Err(format!(
            "a first packet of {} bytes is not a greeting",
            header.len
        ));
    }
    let mut payload = vec![0u8; header.len];
    read_full(&mut stream, &mut payload, deadline)?;
    let greeting = Greeting::parse(&payload).map_err(|e| e.to_string())?;
    Ok(ServerFacts {
        version: String::from_utf8_lossy(greeting.server_version).into_owned(),
        capabilities: greeting.capabilities,
        mariadb_capabilities: greeting.mariadb_capabilities,
        charset: greeting.charset,
    })
}

/// Which of the MariaDB extended capabilities `wanted` every server in
/// `backends` offers, reading their greetings one at a time until none is
/// left. A server that does not greet in time cannot be counted on: it
/// offers nothing.
pub fn offered_by_all(
    mut wanted: u32,
    backends: impl IntoIterator<Item = SocketAddr>,
    timeout: Duration,
) -> u32 {
    for backend in backends {
        if wanted == 0 {
            break;
        }
        let offered = read_server_greeting(backend, timeout).map_or(0, |f| f.mariadb_capabilities);
        if wanted & !offered != 0 {
            log::info!(
                "{backend} lacks MariaDB extended capabilities {:#x}: not offered to clients",
                wanted & !offered
            );
        }
        wanted &= offered;
    }
    wanted
}

/// Fills `buf`, giving every read only the time left before `deadline`, so a
/// backend that sends a byte at a time cannot stretch the wait.
fn read_full(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<(), String> {
    let mut filled = 0;
    while filled < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out".into());
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err("the backend closed the connection".into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::consts::caps::*;
    use crate::protocol::frame::write_packet;
    use std::io::Write;
    use std::net::TcpListener;

    /// A one-shot server that sends `bytes` to its first client and closes.
    fn serve(bytes: Vec<u8>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let _ = stream.write_all(&bytes);
        });
        addr
    }

    fn greeting_packet(version: &[u8], capabilities: u32, charset: u8) -> Vec<u8> {
        mariadb_greeting_packet(version, capabilities, 0, charset)
    }

    fn mariadb_greeting_packet(
        version: &[u8],
        capabilities: u32,
        mariadb_capabilities: u32,
        charset: u8,
    ) -> Vec<u8> {
        let greeting = Greeting {
            server_version: version,
            connection_id: 7,
            scramble: *b"abcdefghijklmnopqrst",
            capabilities,
            mariadb_capabilities,
            charset,
            status: 2,
            auth_plugin: b"mysql_native_password",
        };
        let mut payload = Vec::new();
        greeting.write(&mut payload);
        let mut out = Vec::new();
        write_packet(&mut out, 0, &payload);
        out
    }

    const TIMEOUT: Duration = Duration::from_secs(2);

    #[test]
    fn reads_version_capabilities_and_charset() {
        let caps = PROXY_SUPPORTED | CLIENT_SSL;
        let addr = serve(greeting_packet(b"5.5.5-10.11.6-MariaDB", caps, 45));
        let facts = read_server_greeting(addr, TIMEOUT).unwrap();
        assert_eq!(
            facts,
            ServerFacts {
                version: "5.5.5-10.11.6-MariaDB".into(),
                capabilities: caps,
                mariadb_capabilities: 0,
                charset: 45,
            }
        );
    }

    #[test]
    fn extended_capabilities_count_only_when_every_server_offers_them() {
        let mariadb = || {
            let caps = PROXY_SUPPORTED & !CLIENT_MYSQL;
            serve(mariadb_greeting_packet(
                b"5.5.5-10.11.6-MariaDB",
                caps,
                0x1d,
                45,
            ))
        };
        let mysql = serve(greeting_packet(b"8.0.40", PROXY_SUPPORTED, 45));
        // A port nobody listens on any more.
        let gone = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(offered_by_all(0x10, [mariadb(), mariadb()], TIMEOUT), 0x10);
        assert_eq!(offered_by_all(0x10, [mariadb(), mysql], TIMEOUT), 0);
        assert_eq!(offered_by_all(0x10, [gone, mariadb()], TIMEOUT), 0);
        assert_eq!(offered_by_all(0x10, [], TIMEOUT), 0x10);
    }

    #[test]
    fn an_err_packet_instead_of_a_greeting_gives_none() {
        // ERR 1040 "Too many connections", as a server sends it before a
        // greeting.
        let mut payload = vec![0xff];
        payload.extend_from_slice(&1040u16.to_le_bytes());
        payload.extend_from_slice(b"Too many connections");
        let mut bytes = Vec::new();
        write_packet(&mut bytes, 0, &payload);
        assert_eq!(read_server_greeting(serve(bytes), TIMEOUT), None);
    }

    #[test]
    fn garbage_truncation_and_oversize_give_none() {
        let mut truncated = greeting_packet(b"10.11.6-MariaDB", PROXY_SUPPORTED, 45);
        truncated.truncate(truncated.len() - 10);
        for bytes in [
            b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
            truncated,
            vec![0xff, 0xff, 0xff, 0x00],
            Vec::new(),
        ] {
            assert_eq!(
                read_server_greeting(serve(bytes.clone()), TIMEOUT),
                None,
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn a_silent_backend_gives_none_within_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let started = Instant::now();
        assert_eq!(read_server_greeting(addr, Duration::from_millis(300)), None);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "took {took:?}");
        drop(listener);
    }

    #[test]
    fn nobody_listening_gives_none() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert_eq!(read_server_greeting(addr, TIMEOUT), None);
    }
}
