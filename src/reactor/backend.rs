//! One connection from a reactor to a backend server: the socket, the login
//! state machine, and the small buffers for the packets the proxy makes or
//! reads itself (login, COM_CHANGE_USER). Relayed reply bytes never pass
//! through these buffers: they go straight into the session's client buffer.
//! So those buffers hold storage only while such packets are in them: each
//! gives it back as soon as it is empty again (a logged-in, relaying
//! connection holds none).
//!
//! ```text
//!  Connecting --writable--> AwaitGreeting --greeting--> AwaitResult --OK--> Ready
//!                                                 |          |  ^
//!                                                 |          |  | AuthSwitchRequest
//!                                                 v          v  | (native password)
//!                                               Failed <---ERR--+
//!  Ready --COM_CHANGE_USER sent--> Intercept --OK/ERR--> Ready / Failed
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Token;

use crate::control::BackendLogin;
use crate::protocol::auth::NATIVE_PASSWORD;
use crate::protocol::consts::caps;
use crate::protocol::frame::{self, HEADER_LEN};
use crate::protocol::handshake::{
    append_attribute, AuthSwitchRequest, Greeting, HandshakeResponse,
};
use crate::protocol::packet::{parse_err, parse_ok};
use crate::protocol::reply::{ReplyState, ReplyTracker};

use super::buffer::{Buffer, Io};
use super::stats::BackendCount;

/// Bytes for the packets of a login or a COM_CHANGE_USER, each direction.
const LOGIN_BUFFER: usize = 8 * 1024;

/// The capabilities that change the shape of replies: the client and the
/// backend must agree on each, or relayed bytes would be misread.
const REPLY_SHAPING: u32 = caps::CLIENT_PROTOCOL_41
    | caps::CLIENT_DEPRECATE_EOF
    | caps::CLIENT_MULTI_RESULTS
    | caps::CLIENT_PS_MULTI_RESULTS
    | caps::CLIENT_SESSION_TRACK;

/// Capabilities the proxy always uses towards backends.
const BACKEND_REQUIRED: u32 = caps::CLIENT_LONG_PASSWORD
    | caps::CLIENT_PROTOCOL_41
    | caps::CLIENT_SECURE_CONNECTION
    | caps::CLIENT_PLUGIN_AUTH;

/// Which shard a backend serves, for error messages that say where.
#[derive(Debug, Clone, Copy)]
pub struct ShardAddr {
    pub shard: u32,
    pub addr: SocketAddr,
}

impl fmt::Display for ShardAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {} ({})", self.shard, self.addr)
    }
}

/// What went wrong with a backend, said so the client can act on it.
#[derive(Debug)]
pub enum BackendFailure {
    /// The TCP connection could not be made.
    Connect(String),
    /// Connecting and logging in took longer than `connect_timeout_ms`.
    Timeout,
    /// The server refused the login or the COM_CHANGE_USER with this ERR.
    Refused {
        code: u16,
        sqlstate: [u8; 5],
        message: String,
    },
    /// The connection closed or failed while in use.
    Lost(&'static str),
    /// The server sent bytes the proxy cannot follow.
    Protocol(String),
}

/// Everything needed to log in on behalf of a client.
pub struct LoginRequest<'a> {
    pub login: &'a BackendLogin,
    /// The capabilities the client and the proxy agreed on.
    pub client_caps: u32,
    /// The MariaDB extended capabilities they agreed on.
    pub client_mariadb_caps: u32,
    pub max_packet: u32,
    pub charset: u8,
    pub database: Option<&'a [u8]>,
    /// The client's connection attributes (raw block), if it sent any.
    pub attributes: Option<&'a [u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Connecting,
    AwaitGreeting,
    AwaitResult,
    Ready,
    /// A proxy-made command (COM_CHANGE_USER) is in flight: its reply is
    /// read by the proxy, not relayed.
    Intercept,
}

/// The outcome of feeding the backend's login or intercepted reply packets.
#[derive(Debug)]
pub enum Step {
    Pending,
    /// Logged in (or the intercepted command succeeded): the OK's status flags.
    Done {
        status: u16,
    },
    Failed(BackendFailure),
}

pub struct Backend {
    pub stream: TcpStream,
    pub target: ShardAddr,
    pub readable: bool,
    pub writable: bool,
    /// The server hung up or the socket failed: read until `Closed`, never
    /// trust a short read to mean "drained".
    pub hup: bool,
    /// The client's end of input was passed on (the write side shut, see
    /// `Session::pass_on_client_eof`): never lent again.
    pub sent_eof: bool,
    /// Proxy-made packets on their way to the server.
    pub out: Buffer,
    /// Packets the proxy reads itself (login, intercepted replies).
    inbox: Buffer,
    mode: Mode,
    /// The scramble of the last greeting or auth switch: what a
    /// COM_CHANGE_USER must answer.
    scramble: [u8; 20],
    server_caps: u32,
    /// Capabilities sent at login, as on the wire (the client's, as agreed;
    /// bit 0 clear when MariaDB's extended capabilities were sent too).
    pub caps: u32,
    /// How many of the session's replayed statements this connection has
    /// run (see `Session::replay`).
    pub applied: usize,
    /// In transaction mode, the replay list of the session that last held
    /// this connection: its first `applied` entries are this connection's
    /// session state, compared with a borrower's (`pool.rs`).
    pub state: Arc<Vec<Vec<u8>>>,
    /// When the connection was opened (`pool.max_lifetime_ms`).
    pub born: Instant,
    /// Lent with another client's session state: COM_RESET_CONNECTION
    /// first, then (if that state changed the database) COM_INIT_DB to the
    /// login database, then the borrower's replay.
    pub reset_pending: bool,
    pub init_db_pending: bool,
    /// The token the socket is registered with (whose events they are).
    pub token: Option<Token>,
    /// Statements prepared on this connection, kept for the next borrower
    /// that prepares the same text (transaction mode).
    pub cache: StatementCache,
    /// Names a stretch of this connection's life in which only one client's
    /// commands ran on it: renewed when another client borrows it or the
    /// proxy sends a command of its own (see `session/counters.rs`).
    pub marker: u64,
    next_seq: u8,
    /// Counts this connection in the metrics until it is dropped.
    _counted: BackendCount,
}

/// Statements prepared on one backend connection, by text, least recently
/// used first out (transaction mode: a client's statement ids map to
/// whichever connection runs them).
#[derive(Default)]
pub struct StatementCache {
    entries: Vec<CachedStatement>,
    clock: u64,
}

struct CachedStatement {
    hash: u64,
    sql: Arc<[u8]>,
    id: u32,
    used: u64,
}

impl StatementCache {
    /// The backend id of `sql` here, if prepared.
    pub fn get(&mut self, hash: u64, sql: &[u8]) -> Option<u32> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.hash == hash && *e.sql == *sql)?;
        entry.used = clock;
        Some(entry.id)
    }

    /// Notes a statement prepared here. Returns the backend id of the least
    /// recently used statement pushed out to stay within `capacity`: the
    /// caller closes it on the server.
    pub fn insert(&mut self, hash: u64, sql: Arc<[u8]>, id: u32, capacity: usize) -> Option<u32> {
        self.clock += 1;
        self.entries.push(CachedStatement {
            hash,
            sql,
            id,
            used: self.clock,
        });
        if self.entries.len() <= capacity {
            return None;
        }
        let oldest = (0..self.entries.len()).min_by_key(|&i| self.entries[i].used)?;
        Some(self.entries.swap_remove(oldest).id)
    }

    /// Forgets everything (the server dropped the statements: reset).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// A connection marker no connection carries yet.
pub fn fresh_marker() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Backend {
    /// Starts a non-blocking connect; the socket reports writable when done.
    /// `counted` keeps it in the metrics' count of open connections.
    pub fn connect(target: ShardAddr, counted: BackendCount) -> Result<Backend, BackendFailure> {
        let stream =
            TcpStream::connect(target.addr).map_err(|e| BackendFailure::Connect(e.to_string()))?;
        Ok(Backend {
            stream,
            target,
            readable: false,
            writable: false,
            hup: false,
            sent_eof: false,
            out: Buffer::new(LOGIN_BUFFER),
            inbox: Buffer::new(LOGIN_BUFFER),
            mode: Mode::Connecting,
            scramble: [0; 20],
            server_caps: 0,
            caps: 0,
            applied: 0,
            state: Arc::default(),
            born: Instant::now(),
            reset_pending: false,
            init_db_pending: false,
            token: None,
            cache: StatementCache::default(),
            marker: fresh_marker(),
            next_seq: 0,
            _counted: counted,
        })
    }

    /// Whether a connection coming back to the pool can be lent again: logged
    /// in, nothing half-sent or unread, the server still there.
    pub fn reusable(&self) -> bool {
        self.mode == Mode::Ready
            && self.out.is_empty()
            && self.inbox.is_empty()
            && !self.hup
            && !self.sent_eof
    }

    /// An idle connection about to be lent: false if the server closed it
    /// or sent something unasked (the ERR of a KILL). One non-blocking read.
    pub fn probe_idle(&mut self) -> bool {
        matches!(self.read_inbox(), Io::WouldBlock) && self.inbox.is_empty()
    }

    /// True once logged in and not intercepting: reply bytes are relayed.
    pub fn relaying(&self) -> bool {
        self.mode == Mode::Ready
    }

    /// On a writable event while connecting: has the connect finished?
    /// (mio: a writable event may be spurious; `peer_addr` tells.)
    pub fn check_connected(&mut self) -> Result<bool, BackendFailure> {
        if self.mode != Mode::Connecting {
            return Ok(true);
        }
        if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
            return Err(BackendFailure::Connect(e.to_string()));
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                let _ = self.stream.set_nodelay(true);
                self.mode = Mode::AwaitGreeting;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(BackendFailure::Connect(e.to_string())),
        }
    }

    /// Reads what the proxy itself must read (login, intercepted replies).
    pub fn read_inbox(&mut self) -> Io {
        let io = self.inbox.read_from(&mut self.stream);
        // An idle connection's reads find nothing (or its close).
        self.inbox.release_if_empty();
        io
    }

    /// Sends proxy-made packets.
    pub fn flush_out(&mut self) -> Io {
        let n = self.out.len();
        let io = self.out.write_to(&mut self.stream, n);
        self.out.release_if_empty();
        io
    }

    /// Advances the login with the packets in the inbox.
    pub fn step_login(&mut self, req: &LoginRequest<'_>) -> Step {
        loop {
            let Some((seq, len)) = self.next_packet() else {
                return Step::Pending;
            };
            let step = {
                // Login packets are few and small: a copy keeps the borrow
                // of the inbox out of the state machine.
                let payload = self.inbox.data()[HEADER_LEN..HEADER_LEN + len].to_vec();
                match self.mode {
                    Mode::AwaitGreeting => self.on_greeting(&payload, req),
                    Mode::AwaitResult | Mode::Intercept => {
                        self.next_seq = seq.wrapping_add(1);
                        self.on_auth_result(&payload, req.login)
                    }
                    Mode::Connecting | Mode::Ready => Step::Failed(BackendFailure::Protocol(
                        "unexpected bytes from the server".into(),
                    )),
                }
            };
            self.inbox.consume(HEADER_LEN + len);
            self.inbox.release_if_empty();
            match step {
                Step::Pending => continue,
                Step::Done { .. } if !self.inbox.is_empty() => {
                    return Step::Failed(BackendFailure::Protocol(
                        "the server sent bytes after its OK".into(),
                    ))
                }
                other => return other,
            }
        }
    }

    /// Sends COM_CHANGE_USER for a client that re-authenticated with the
    /// proxy; its reply is read with `step_login`.
    pub fn change_user(
        &mut self,
        login: &BackendLogin,
        database: &[u8],
        charset: u16,
        attributes: Option<&[u8]>,
    ) -> Result<(), BackendFailure> {
        let mut payload = Vec::with_capacity(128);
        payload.push(crate::protocol::consts::com::COM_CHANGE_USER);
        payload.extend_from_slice(&login.user);
        payload.push(0);
        let auth = login.credential.scramble_response(&self.scramble);
        payload.push(auth.len() as u8);
        payload.extend_from_slice(&auth);
        payload.extend_from_slice(database);
        payload.push(0);
        payload.extend_from_slice(&charset.to_le_bytes());
        payload.extend_from_slice(NATIVE_PASSWORD);
        payload.push(0);
        if self.caps & caps::CLIENT_CONNECT_ATTRS != 0 {
            let mut block = attributes.map(<[u8]>::to_vec).unwrap_or_default();
            append_attribute(&mut block, b"_proxy", b"dbrouter");
            crate::protocol::reader::put_lenenc_bytes(&mut payload, &block);
        }
        self.send(0, &payload)?;
        self.mode = Mode::Intercept;
        Ok(())
    }

    /// Sends a command the proxy makes itself (a replayed session
    /// statement, a deferred BEGIN); its one-packet reply is read with
    /// `take_simple_reply`. Its reply changes the server's per-connection
    /// counters (ROW_COUNT() ...): the connection's stretch of one client's
    /// commands ends (`marker`).
    pub fn send_command(&mut self, payload: &[u8]) -> Result<(), BackendFailure> {
        self.marker = fresh_marker();
        self.send(0, payload)?;
        self.mode = Mode::Intercept;
        Ok(())
    }

    /// The reply to `send_command`, once it is all in: the OK's (or EOF's)
    /// status flags, or the server's ERR. Such commands (SET, USE, BEGIN,
    /// COM_INIT_DB, COM_SET_OPTION) answer with one packet.
    pub fn take_simple_reply(&mut self) -> Option<Result<u16, BackendFailure>> {
        let (_, len) = self.next_packet()?;
        let payload = &self.inbox.data()[HEADER_LEN..HEADER_LEN + len];
        let outcome = match payload.first() {
            Some(0x00) | Some(0xFE) => match parse_ok(payload) {
                Some(ok) => Ok(ok.status),
                // A short 0xFE is an EOF packet: warnings, then status.
                None if payload.len() == 5 => Ok(u16::from_le_bytes([payload[3], payload[4]])),
                None => Err(BackendFailure::Protocol("malformed OK packet".into())),
            },
            Some(0xFF) => Err(refused(payload)),
            _ => Err(BackendFailure::Protocol(
                "a result set where an OK was expected".into(),
            )),
        };
        self.inbox.consume(HEADER_LEN + len);
        self.inbox.release_if_empty();
        if outcome.is_ok() && !self.inbox.is_empty() {
            return Some(Err(BackendFailure::Protocol(
                "the server sent bytes after its OK".into(),
            )));
        }
        self.mode = Mode::Ready;
        Some(outcome)
    }

    /// Reads the reply to a proxy-made COM_STMT_PREPARE as it arrives: the
    /// statement id from its first packet (or the server's ERR), then the
    /// parameter and column definitions, skipped. `Some(Ok(id))` once the
    /// whole reply is in.
    pub fn take_prepare_reply(
        &mut self,
        tracker: &mut ReplyTracker,
        id: &mut Option<u32>,
    ) -> Option<Result<u32, BackendFailure>> {
        if id.is_none() {
            let (_, len) = self.next_packet()?;
            let payload = &self.inbox.data()[HEADER_LEN..HEADER_LEN + len];
            match payload.first() {
                Some(0x00) if payload.len() >= 9 => {
                    *id = Some(u32::from_le_bytes([
                        payload[1], payload[2], payload[3], payload[4],
                    ]))
                }
                Some(0xFF) => {
                    let failure = refused(payload);
                    self.inbox.consume(HEADER_LEN + len);
                    self.inbox.release_if_empty();
                    self.mode = Mode::Ready;
                    return Some(Err(failure));
                }
                _ => {
                    return Some(Err(BackendFailure::Protocol(
                        "malformed COM_STMT_PREPARE reply".into(),
                    )))
                }
            }
        }
        loop {
            let scan = match tracker.scan(self.inbox.data()) {
                Ok(scan) => scan,
                Err(e) => return Some(Err(BackendFailure::Protocol(e.to_string()))),
            };
            self.inbox.consume(scan.forwardable);
            self.inbox.release_if_empty();
            match scan.state {
                ReplyState::Done { .. } => {
                    self.mode = Mode::Ready;
                    return id.map(Ok);
                }
                _ if scan.forwardable == 0 => return None,
                _ => {}
            }
        }
    }

    /// Queues one proxy-made packet for the server.
    pub fn send(&mut self, seq: u8, payload: &[u8]) -> Result<(), BackendFailure> {
        let mut bytes = Vec::with_capacity(payload.len() + HEADER_LEN);
        frame::write_packet(&mut bytes, seq, payload);
        if self.out.push(&bytes) {
            Ok(())
        } else {
            Err(BackendFailure::Protocol(
                "login packet larger than the login buffer".into(),
            ))
        }
    }

    /// The sequence id and length of the first whole packet in the inbox.
    fn next_packet(&self) -> Option<(u8, usize)> {
        let header = frame::parse_header(self.inbox.data())?;
        if header.len + HEADER_LEN > self.inbox.data().len() {
            return None;
        }
        Some((header.seq, header.len))
    }

    fn on_greeting(&mut self, payload: &[u8], req: &LoginRequest<'_>) -> Step {
        let greeting = match Greeting::parse(payload) {
            Ok(g) => g,
            Err(e) => return Step::Failed(BackendFailure::Protocol(e.to_string())),
        };
        self.scramble = greeting.scramble;
        self.server_caps = greeting.capabilities;
        // Every MariaDB extended capability the proxy offers shapes replies.
        let missing = req.client_caps & REPLY_SHAPING & !greeting.capabilities;
        let missing_mariadb = req.client_mariadb_caps & !greeting.mariadb_capabilities;
        if missing != 0 || missing_mariadb != 0 {
            return Step::Failed(BackendFailure::Protocol(format!(
                "the server lacks capabilities {missing:#x} (MariaDB extended: \
                 {missing_mariadb:#x}) that clients were promised; restart dbrouter so it \
                 announces what the server offers"
            )));
        }
        let mut capabilities = (req.client_caps & greeting.capabilities) | BACKEND_REQUIRED;
        capabilities &= !(caps::CLIENT_SSL | caps::CLIENT_COMPRESS);
        if req.database.is_some() {
            capabilities |= caps::CLIENT_CONNECT_WITH_DB;
        } else {
            capabilities &= !caps::CLIENT_CONNECT_WITH_DB;
        }
        let mut attributes = Vec::new();
        if greeting.capabilities & caps::CLIENT_CONNECT_ATTRS != 0 {
            capabilities |= caps::CLIENT_CONNECT_ATTRS;
            if let Some(block) = req.attributes {
                attributes.extend_from_slice(block);
            }
            append_attribute(&mut attributes, b"_proxy", b"dbrouter");
        } else {
            capabilities &= !caps::CLIENT_CONNECT_ATTRS;
        }
        let auth = req.login.credential.scramble_response(&greeting.scramble);
        let response = HandshakeResponse {
            // Bit 0 is cleared on the wire when these are given.
            capabilities,
            mariadb_capabilities: req.client_mariadb_caps,
            max_packet: req.max_packet,
            charset: req.charset,
            username: &req.login.user,
            auth_response: &auth,
            database: req.database,
            auth_plugin: Some(NATIVE_PASSWORD),
            attributes: (capabilities & caps::CLIENT_CONNECT_ATTRS != 0)
                .then_some(attributes.as_slice()),
        };
        self.caps = response.wire_capabilities();
        let mut payload = Vec::with_capacity(256);
        response.write(&mut payload);
        if let Err(e) = self.send(1, &payload) {
            return Step::Failed(e);
        }
        self.mode = Mode::AwaitResult;
        Step::Pending
    }

    fn on_auth_result(&mut self, payload: &[u8], login: &BackendLogin) -> Step {
        match payload.first() {
            Some(0x00) => match parse_ok(payload) {
                Some(ok) => {
                    self.mode = Mode::Ready;
                    Step::Done { status: ok.status }
                }
                None => Step::Failed(BackendFailure::Protocol("malformed OK packet".into())),
            },
            Some(0xFF) => {
                // A refused COM_CHANGE_USER leaves the server's session as it
                // was (the old user stays logged in): the connection is usable.
                if self.mode == Mode::Intercept {
                    self.mode = Mode::Ready;
                }
                Step::Failed(refused(payload))
            }
            Some(0xFE) => {
                let Ok(switch) = AuthSwitchRequest::parse(payload) else {
                    return Step::Failed(BackendFailure::Protocol(
                        "malformed AuthSwitchRequest".into(),
                    ));
                };
                if switch.plugin != NATIVE_PASSWORD || switch.data.len() < 20 {
                    return Step::Failed(BackendFailure::Protocol(format!(
                        "the server asks for auth plugin {:?}; dbrouter logs in to backends \
                         with mysql_native_password only",
                        String::from_utf8_lossy(switch.plugin)
                    )));
                }
                self.scramble.copy_from_slice(&switch.data[..20]);
                let auth = login.credential.scramble_response(&self.scramble);
                match self.send(self.next_seq, &auth) {
                    Ok(()) => Step::Pending,
                    Err(e) => Step::Failed(e),
                }
            }
            _ => Step::Failed(BackendFailure::Protocol(
                "unexpected packet during login".into(),
            )),
        }
    }
}

fn refused(payload: &[u8]) -> BackendFailure {
    match parse_err(payload) {
        Some(err) => BackendFailure::Refused {
            code: err.code,
            sqlstate: err
                .sqlstate
                .and_then(|s| s.try_into().ok())
                .unwrap_or(*b"HY000"),
            message: String::from_utf8_lossy(err.message).into_owned(),
        },
        None => BackendFailure::Protocol("malformed ERR packet".into()),
    }
}
