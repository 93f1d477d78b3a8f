//! A client session: its socket, its two buffers, its backend connection and
//! the phase it is in. Owned by one reactor; nothing here is shared.
//!
//! ```text
//!            greeting sent
//!  Handshake ─────────────► (response) ──► AuthSwitch ──► (answer) ─┐
//!      │                         │                                  │
//!      │                         ▼                                  ▼
//!      │                   authenticate ◄───────────────────────────┘
//!      │                    │    │    └─ unknown user ─► AwaitUsers (re-read accounts)
//!      │                    │    └─ wrong password ─► Closing (ERR 1045)
//!      │                    ▼
//!      │              BackendLogin ── failed ─► Closing (ERR 2003/2013/...)
//!      │                    │ OK
//!      │                    ▼
//!      │   ┌──────────►   Idle  ── COM_CHANGE_USER ─► (ChangeUserSwitch) ─► ChangeUserBackend ─┐
//!      │   │                │                                                                 │
//!      │   │ reply done     │ command forwarded                                               │
//!      │   │                ▼                                                                 │
//!      │   └─────────────  Relay ◄──── Infile (LOAD DATA LOCAL: the client's file) ◄──┐       │
//!      │                    └───────── 0xFB request ─────────────────────────────────┘       │
//!      └──────────────────────────────────────────────────────────── Idle ◄──────────────────┘
//! ```
//!
//! Bytes move without copies inside the proxy: the client's packets are read
//! into `front_in` and written to the backend from there once the command is
//! known (`in_ready` counts the bytes cleared to go); the backend's reply is
//! read into `front_out` and written to the client from there as soon as the
//! reply tracker has seen the packet heads (`out_ready`). Both buffers have a
//! fixed size: a side that cannot write stops the other side's reads, and TCP
//! flow control does the rest.

use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry};

use crate::control::{AuthOutcome, BackendLogin};
use crate::protocol::auth::{Scramble, NATIVE_PASSWORD};
use crate::protocol::command::{ChangeUser, Command, CommandError};
use crate::protocol::consts::{caps, com, status};
use crate::protocol::frame::{self, InfileRelay, PacketRelay, HEADER_LEN, MAX_FRAME_PAYLOAD};
use crate::protocol::handshake::{is_ssl_request, AuthSwitchRequest, Greeting, HandshakeResponse};
use crate::protocol::packet::{self, ErrorCode};
use crate::protocol::reply::{Expect, ReplyState, ReplyTracker};
use crate::route::params::ExecuteParams;
use crate::route::router::{route_prepared, route_query, Decision, RouteError, Routed};
use crate::route::scanner::ScanOptions;
use crate::route::scanner::{analyze, Target};
use crate::route::topology::Topology;
use crate::route::value::KeyValue;

use super::backend::{Backend, BackendFailure, LoginRequest, ShardAddr, Step};
use super::buffer::{Buffer, Io};
use super::statements::{set_statement_id, Statements, StmtRoute};
use super::{back_token, Ctx};

/// Rounds of the drive loop before the session yields to the others; the
/// reactor comes back to it after polling (fairness under load).
const MAX_ROUNDS: usize = 32;

/// What the reactor should do with a session after driving it.
#[derive(Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Stopped at the round limit with work left: drive again soon.
    Busy,
    Closed,
}

/// What the client told us about itself at login.
#[derive(Default)]
struct Client {
    /// The capabilities agreed on: what the client asked ∩ what we offered.
    caps: u32,
    charset: u8,
    max_packet: u32,
    user: Vec<u8>,
    database: Option<Vec<u8>>,
    attributes: Option<Vec<u8>>,
}

/// What a COM_CHANGE_USER asks for, once its authentication is done.
struct ChangeUserRequest {
    database: Vec<u8>,
    charset: u16,
    attributes: Option<Vec<u8>>,
}

/// A COM_CHANGE_USER copied out of the client buffer (the buffer is
/// consumed before the authentication runs).
struct ChangeUserCommand {
    user: Vec<u8>,
    response: Vec<u8>,
    native: bool,
    request: ChangeUserRequest,
}

impl ChangeUserRequest {
    fn from_command(change: &ChangeUser<'_>, charset: u8) -> ChangeUserCommand {
        ChangeUserCommand {
            user: change.username.to_vec(),
            response: change.auth_response.to_vec(),
            native: change.auth_plugin.is_none_or(|p| p == NATIVE_PASSWORD),
            request: ChangeUserRequest {
                database: change.database.to_vec(),
                charset: change.charset.unwrap_or(u16::from(charset)),
                attributes: change.attributes.map(<[u8]>::to_vec),
            },
        }
    }
}

enum Purpose {
    Login,
    ChangeUser(ChangeUserRequest),
}

/// An authentication parked until the accounts have been re-read.
struct PendingAuth {
    user: Vec<u8>,
    response: Vec<u8>,
    reply_seq: u8,
    purpose: Purpose,
    /// When the re-read was asked for: only a read that started later can
    /// know an account created just before the client connected.
    requested_at: Instant,
}

/// A client command waiting for its shard's backend to be ready. The
/// command's bytes stay in `front_in` (at `in_ready`) meanwhile.
struct Dispatch {
    shard: usize,
    /// The packet's length on the wire.
    total: usize,
    expect: Option<Expect>,
    /// Session statements in the command (COM_QUERY payloads of its SET and
    /// USE parts, or the COM_INIT_DB / COM_SET_OPTION payload): replayed on
    /// the session's other backends once this one accepted them.
    record: Vec<Vec<u8>>,
    /// A routed statement: the deferred BEGIN must run first.
    opens_transaction: bool,
    /// A COM_STMT_* command on this statement (client id): it must be
    /// prepared on the shard first, and its id is rewritten to the backend's.
    stmt: Option<u32>,
    /// For COM_STMT_EXECUTE: whether the packet carries parameter types.
    execute_types: Option<bool>,
    /// For COM_STMT_PREPARE: the client id the reply's id is rewritten to.
    prepare: Option<u32>,
    /// The packet is too large to hold: it is forwarded as it arrives
    /// (`total` is then 0), and a failure closes the session, since the rest
    /// of the packet cannot be skipped.
    streamed: bool,
}

/// What a prelude command (one the proxy sends before the client's) is.
enum Prelude {
    /// A replayed session statement or the deferred BEGIN: one OK or ERR.
    Simple,
    /// The statement of a COM_STMT_* command, prepared on a new shard.
    Prepare {
        tracker: ReplyTracker,
        id: Option<u32>,
    },
}

/// Where the session's transaction is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Transaction {
    None,
    /// BEGIN received, answered by us; sent with the first routed
    /// statement to that statement's shard.
    Pending(Vec<u8>),
    /// Open on this shard (the server said SERVER_STATUS_IN_TRANS).
    Open(usize),
}

enum Phase {
    /// Greeting sent; waiting for the client's handshake response.
    Handshake,
    /// AuthSwitchRequest sent (the client opened with another plugin).
    AuthSwitch,
    /// Unknown user: waiting for the control thread to re-read accounts.
    AwaitUsers(PendingAuth),
    /// Connecting and logging in to the backend; then OK to the client.
    BackendLogin { reply_seq: u8 },
    /// Opening the backend a client command needs (another shard).
    Opening(Dispatch),
    /// Bringing that backend up to date before the command: replaying
    /// session statements, or the deferred BEGIN. Replies read by us.
    Prelude(Dispatch, Prelude),
    /// Between commands.
    Idle,
    /// A command is being forwarded (`request`: the rest of a packet too big
    /// to hold) and its reply relayed (`reply`: none for commands without).
    Relay {
        reply: Option<ReplyTracker>,
        request: Option<PacketRelay>,
        /// The command's session statements (see `Dispatch::record`).
        record: Vec<Vec<u8>>,
        /// COM_STMT_PREPARE: the client id its OK's id is rewritten to.
        prepared: Option<u32>,
    },
    /// LOAD DATA LOCAL INFILE: the client's file goes to the backend.
    Infile(InfileRelay),
    /// COM_CHANGE_USER with another plugin: AuthSwitchRequest sent.
    ChangeUserSwitch {
        user: Vec<u8>,
        request: ChangeUserRequest,
    },
    /// COM_CHANGE_USER sent to the backend; its reply is read by us.
    ChangeUserBackend {
        reply_seq: u8,
        user: Vec<u8>,
        login: BackendLogin,
    },
    /// Send what is in `front_out`, then close.
    Closing,
}

pub struct Session {
    key: usize,
    front: TcpStream,
    peer: SocketAddr,
    front_readable: bool,
    front_writable: bool,
    /// The client hung up: read until `Closed` (see `Io::Short`).
    front_hup: bool,
    /// Client bytes: the first `in_ready` are cleared to go to the backend.
    front_in: Buffer,
    in_ready: usize,
    /// Bytes for the client: the first `out_ready` are cleared to go.
    front_out: Buffer,
    out_ready: usize,
    /// The backend of shard `active`, the one commands go to now.
    back: Option<Backend>,
    active: usize,
    /// The session's backends to the other shards, by shard index (in
    /// session mode a client keeps one connection per shard it used).
    parked: Vec<Option<Backend>>,
    /// An event arrived for a parked backend (it may have gone away).
    parked_events: bool,
    /// Why a backend went away while the session was idle: told to the
    /// client at its next command.
    back_lost: Option<String>,
    /// Session statements (COM_QUERY SET/USE, COM_INIT_DB, COM_SET_OPTION
    /// payloads) in order: every backend applies them all before running a
    /// command (`Backend::applied` counts how many it has).
    replay: Vec<Vec<u8>>,
    transaction: Transaction,
    /// The server status of the last reply, for replies the proxy makes.
    last_status: u16,
    /// Prepared statements, by the ids the client sees.
    stmts: Statements,
    /// How this session's statements are lexed (its sql_mode); `None` after
    /// a `SET sql_mode` the proxy could not follow.
    scan: Option<ScanOptions>,
    phase: Phase,
    client: Client,
    scramble: [u8; 20],
    login: Option<BackendLogin>,
    /// The generation of the one live deadline (0: none); others are stale.
    timer_generation: u64,
}

impl Session {
    /// A new client: the greeting is queued and the handshake deadline armed.
    pub fn new(
        key: usize,
        front: TcpStream,
        peer: SocketAddr,
        connection_id: u32,
        ctx: &mut Ctx<'_>,
    ) -> Session {
        let buffer_size = ctx.shared.config.proxy.buffer_size;
        let scramble = Scramble::generate().0;
        let mut session = Session {
            key,
            front,
            peer,
            front_readable: false,
            front_writable: false,
            front_hup: false,
            front_in: Buffer::new(buffer_size),
            in_ready: 0,
            front_out: Buffer::new(buffer_size),
            out_ready: 0,
            back: None,
            active: 0,
            parked: Vec::new(),
            parked_events: false,
            back_lost: None,
            replay: Vec::new(),
            transaction: Transaction::None,
            last_status: status::SERVER_STATUS_AUTOCOMMIT,
            stmts: Statements::default(),
            scan: Some(ctx.shared.scan),
            phase: Phase::Handshake,
            client: Client::default(),
            scramble,
            login: None,
            timer_generation: 0,
        };
        let greeting = Greeting {
            server_version: &ctx.shared.server_version,
            connection_id,
            scramble,
            capabilities: ctx.shared.advertised_caps,
            charset: ctx.shared.server_charset,
            status: status::SERVER_STATUS_AUTOCOMMIT,
            auth_plugin: NATIVE_PASSWORD,
        };
        let mut payload = Vec::with_capacity(128);
        greeting.write(&mut payload);
        session.send_packet(0, &payload);
        let at = ctx.now + ctx.shared.config.handshake_timeout();
        session.arm_deadline(ctx, at);
        session
    }

    /// Records readiness from an event; `back` tells which socket.
    /// `slot` 0 is the client, `1 + i` the backend of shard index `i`;
    /// `hup`: the peer hung up or the socket failed.
    pub fn on_event(&mut self, slot: usize, readable: bool, writable: bool, hup: bool) {
        if slot == 0 {
            self.front_readable |= readable;
            self.front_writable |= writable;
            self.front_hup |= hup;
            return;
        }
        let shard = slot - 1;
        let back = if shard == self.active {
            self.back.as_mut()
        } else {
            self.parked_events = true;
            self.parked.get_mut(shard).and_then(Option::as_mut)
        };
        if let Some(b) = back {
            b.readable |= readable;
            b.writable |= writable;
            b.hup |= hup;
        }
    }

    /// True between commands: a draining reactor may close it now.
    pub fn is_idle(&self) -> bool {
        matches!(
            self.phase,
            Phase::Idle | Phase::Handshake | Phase::AuthSwitch | Phase::AwaitUsers(_)
        ) && self.in_ready == 0
    }

    pub fn awaits_users(&self) -> bool {
        matches!(self.phase, Phase::AwaitUsers(_))
    }

    /// Unregisters every socket; dropping the session closes them.
    pub fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.front);
        for back in self.back.iter_mut().chain(self.parked.iter_mut().flatten()) {
            let _ = registry.deregister(&mut back.stream);
        }
    }

    /// The deadline armed with `generation` has passed.
    pub fn on_deadline(&mut self, generation: u64, ctx: &mut Ctx<'_>) -> Liveness {
        if generation != self.timer_generation {
            return Liveness::Alive;
        }
        match self.phase {
            Phase::BackendLogin { reply_seq } => {
                self.backend_failed(ctx, BackendFailure::Timeout, reply_seq)
            }
            Phase::ChangeUserBackend { reply_seq, .. } => {
                self.backend_failed(ctx, BackendFailure::Timeout, reply_seq)
            }
            Phase::Opening(_) | Phase::Prelude(..) => {
                self.backend_failed(ctx, BackendFailure::Timeout, 1)
            }
            // A client that does not finish logging in (B8): closed, as
            // the server closes it after connect_timeout.
            _ => return Liveness::Closed,
        }
        self.drive(ctx)
    }

    /// Moves every byte that can move now, then returns.
    pub fn drive(&mut self, ctx: &mut Ctx<'_>) -> Liveness {
        for _ in 0..MAX_ROUNDS {
            let mut progress = false;

            // 1. To the client.
            if self.front_writable && self.out_ready > 0 {
                match self.front_out.write_to(&mut self.front, self.out_ready) {
                    Io::Moved(n) => {
                        self.out_ready -= n;
                        progress = true;
                    }
                    Io::Short(n) => {
                        self.out_ready -= n;
                        self.front_writable = false;
                        progress = true;
                    }
                    Io::WouldBlock => self.front_writable = false,
                    Io::Closed => return Liveness::Closed,
                    Io::Nothing => {}
                }
            }
            if let Phase::Closing = self.phase {
                if self.out_ready == 0 {
                    return Liveness::Closed;
                }
                if progress {
                    continue;
                }
                return Liveness::Alive;
            }

            // 2. The backend, both ways; and whether a parked one left.
            progress |= self.pump_backend(ctx);
            if self.parked_events {
                self.check_parked(ctx);
            }

            // 3. From the client.
            if self.front_readable {
                match self.front_in.read_from(&mut self.front) {
                    Io::Moved(_) => progress = true,
                    Io::Short(_) => {
                        self.front_readable = self.front_hup;
                        progress = true;
                    }
                    Io::WouldBlock => self.front_readable = false,
                    // The client left (or its socket failed): nothing is
                    // owed to it; the backend connection goes with it.
                    Io::Closed => return Liveness::Closed,
                    Io::Nothing => {}
                }
            }

            // 4. Whatever the phase can do with the bytes held.
            progress |= self.advance(ctx);

            if !progress {
                return Liveness::Alive;
            }
        }
        Liveness::Busy
    }

    // ---------------------------------------------------------------- backend

    fn pump_backend(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let Some(back) = self.back.as_mut() else {
            return false;
        };
        let mut progress = false;
        if back.writable {
            match back.check_connected() {
                Ok(true) => {}
                Ok(false) => {
                    back.writable = false;
                    return false;
                }
                Err(e) => {
                    self.fail_backend_in_phase(ctx, e);
                    return true;
                }
            }
            // Proxy-made packets (login, COM_CHANGE_USER) go first; client
            // bytes only once the backend is logged in.
            let (io, from_client) = if !back.out.is_empty() {
                (back.flush_out(), false)
            } else if self.in_ready > 0 && back.relaying() {
                (
                    self.front_in.write_to(&mut back.stream, self.in_ready),
                    true,
                )
            } else {
                (Io::Nothing, false)
            };
            match io {
                Io::Moved(n) | Io::Short(n) => {
                    if from_client {
                        self.in_ready -= n;
                    }
                    if matches!(io, Io::Short(_)) {
                        back.writable = false;
                    }
                    progress = true;
                }
                Io::WouldBlock => back.writable = false,
                Io::Closed => {
                    self.fail_backend_in_phase(ctx, BackendFailure::Lost("while sending to it"));
                    return true;
                }
                Io::Nothing => {}
            }
        }
        let Some(back) = self.back.as_mut() else {
            return true;
        };
        if back.readable {
            if back.relaying() && matches!(self.phase, Phase::Relay { reply: Some(_), .. }) {
                let io = self.front_out.read_from(&mut back.stream);
                if matches!(io, Io::Short(_)) && !back.hup {
                    back.readable = false;
                }
                match io {
                    Io::Moved(_) | Io::Short(_) => {
                        progress = true;
                        self.scan_reply(ctx);
                    }
                    Io::WouldBlock => back.readable = false,
                    Io::Closed => {
                        self.fail_backend_in_phase(ctx, BackendFailure::Lost("during the query"));
                        return true;
                    }
                    Io::Nothing => {} // client buffer full: backpressure
                }
            } else {
                let io = back.read_inbox();
                if matches!(io, Io::Short(_)) && !back.hup {
                    back.readable = false;
                }
                match io {
                    Io::Moved(_) | Io::Short(_) => {
                        progress = true;
                        self.step_backend_login(ctx);
                    }
                    Io::WouldBlock => back.readable = false,
                    Io::Closed => {
                        self.fail_backend_in_phase(ctx, BackendFailure::Lost("while it was idle"));
                        return true;
                    }
                    Io::Nothing => {
                        self.fail_backend_in_phase(
                            ctx,
                            BackendFailure::Protocol("it sent more than a login needs".into()),
                        );
                        return true;
                    }
                }
            }
        }
        progress
    }

    /// Login or intercepted-reply packets arrived from the backend.
    fn step_backend_login(&mut self, ctx: &mut Ctx<'_>) {
        let Some(back) = self.back.as_mut() else {
            return;
        };
        let Some(login) = self.login.as_ref() else {
            return;
        };
        match &self.phase {
            Phase::BackendLogin { .. } | Phase::Opening(_) => {
                let req = LoginRequest {
                    login,
                    client_caps: self.client.caps,
                    max_packet: self.client.max_packet,
                    charset: self.client.charset,
                    database: self.client.database.as_deref(),
                    attributes: self.client.attributes.as_deref(),
                };
                let step = back.step_login(&req);
                let phase = std::mem::replace(&mut self.phase, Phase::Closing);
                match (step, phase) {
                    (Step::Pending, phase) => self.phase = phase,
                    (Step::Done { status }, Phase::BackendLogin { reply_seq }) => {
                        self.disarm_deadline();
                        self.last_status = status;
                        self.send_ok(reply_seq, status);
                        self.phase = Phase::Idle;
                    }
                    (Step::Done { .. }, Phase::Opening(dispatch)) => {
                        self.disarm_deadline();
                        self.continue_dispatch(ctx, dispatch);
                    }
                    (Step::Done { .. }, _) => {}
                    (Step::Failed(e), Phase::BackendLogin { reply_seq }) => {
                        self.backend_failed(ctx, e, reply_seq)
                    }
                    (Step::Failed(e), _) => self.backend_failed(ctx, e, 1),
                }
            }
            Phase::Prelude(_, Prelude::Prepare { .. }) => {
                let Phase::Prelude(
                    dispatch,
                    Prelude::Prepare {
                        mut tracker,
                        mut id,
                    },
                ) = std::mem::replace(&mut self.phase, Phase::Closing)
                else {
                    return;
                };
                match back.take_prepare_reply(&mut tracker, &mut id) {
                    None => self.phase = Phase::Prelude(dispatch, Prelude::Prepare { tracker, id }),
                    Some(Ok(backend_id)) => {
                        if let Some(stmt) = dispatch.stmt.and_then(|s| self.stmts.get_mut(s)) {
                            stmt.on.push((dispatch.shard, backend_id));
                        }
                        self.disarm_deadline();
                        self.continue_dispatch(ctx, dispatch);
                    }
                    Some(Err(BackendFailure::Refused {
                        code,
                        sqlstate,
                        message,
                    })) => {
                        // The statement does not prepare there (a table
                        // missing on that shard, say): this command fails,
                        // the session and the statement live on.
                        self.disarm_deadline();
                        let text = format!(
                            "dbrouter: preparing the statement on shard {} failed: {message}",
                            dispatch.shard
                        );
                        let mut bytes = Vec::with_capacity(text.len() + 16);
                        write_relayed_err(&mut bytes, 1, code, &sqlstate, &text);
                        self.abandon(&dispatch, &bytes);
                    }
                    Some(Err(e)) => self.backend_failed(ctx, e, 1),
                }
            }
            Phase::Prelude(_, Prelude::Simple) => {
                let Some(reply) = back.take_simple_reply() else {
                    return;
                };
                let Phase::Prelude(dispatch, _) =
                    std::mem::replace(&mut self.phase, Phase::Closing)
                else {
                    return;
                };
                match reply {
                    Ok(status) => {
                        if back.applied < self.replay.len() {
                            back.applied += 1;
                        } else if let Transaction::Pending(_) = self.transaction {
                            self.transaction = Transaction::Open(dispatch.shard);
                        }
                        self.last_status = status;
                        self.disarm_deadline();
                        self.continue_dispatch(ctx, dispatch);
                    }
                    Err(BackendFailure::Refused {
                        code,
                        sqlstate,
                        message,
                    }) => {
                        // The backend cannot take the session's state: the
                        // command is not run; the connection is dropped so
                        // that a later command retries from scratch.
                        self.disarm_deadline();
                        self.drop_backend(ctx);
                        let text = format!(
                            "dbrouter: bringing the session to shard {} failed: {message}",
                            dispatch.shard
                        );
                        let mut bytes = Vec::with_capacity(text.len() + 16);
                        write_relayed_err(&mut bytes, 1, code, &sqlstate, &text);
                        self.abandon(&dispatch, &bytes);
                    }
                    Err(e) => self.backend_failed(ctx, e, 1),
                }
            }
            Phase::ChangeUserBackend {
                reply_seq,
                login: new_login,
                ..
            } => {
                let reply_seq = *reply_seq;
                let req = LoginRequest {
                    login: new_login,
                    client_caps: self.client.caps,
                    max_packet: self.client.max_packet,
                    charset: self.client.charset,
                    database: None,
                    attributes: None,
                };
                match back.step_login(&req) {
                    Step::Pending => {}
                    Step::Done { status } => {
                        self.disarm_deadline();
                        if let Phase::ChangeUserBackend { user, login, .. } =
                            std::mem::replace(&mut self.phase, Phase::Idle)
                        {
                            self.client.user = user;
                            self.login = Some(login);
                        }
                        // The server reset this connection's session; the
                        // other shards' connections belong to the old user.
                        self.forget_session_state(ctx);
                        self.send_ok(reply_seq, status);
                    }
                    Step::Failed(BackendFailure::Refused {
                        code,
                        sqlstate,
                        message,
                    }) => {
                        // As on the server, a refused change of user keeps
                        // the session and its old user.
                        self.disarm_deadline();
                        self.phase = Phase::Idle;
                        let mut bytes = Vec::with_capacity(message.len() + 16);
                        write_relayed_err(&mut bytes, reply_seq, code, &sqlstate, &message);
                        self.push_ready(&bytes);
                    }
                    Step::Failed(e) => self.backend_failed(ctx, e, reply_seq),
                }
            }
            // Bytes from an idle backend: it is going away (the server
            // sends an ERR before closing a killed connection) or broken.
            _ => self.fail_backend_in_phase(ctx, BackendFailure::Lost("while it was idle")),
        }
    }

    /// Reply bytes arrived in `front_out` past `out_ready`: let the
    /// tracker clear them for the client.
    fn scan_reply(&mut self, ctx: &mut Ctx<'_>) {
        let Phase::Relay {
            reply: Some(tracker),
            request,
            record,
            prepared,
        } = &mut self.phase
        else {
            return;
        };
        if let Some(client_id) = *prepared {
            // A COM_STMT_PREPARE reply: before its first packet goes to the
            // client, note the backend's id and put the client's in its place.
            let unscanned = &mut self.front_out.data_mut()[self.out_ready..];
            if unscanned.len() < HEADER_LEN + 9 {
                return; // the rest of the OK is on its way
            }
            let payload = &mut unscanned[HEADER_LEN..];
            match self.stmts.get_mut(client_id) {
                Some(stmt) if payload[0] == 0x00 => {
                    let backend_id =
                        u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
                    stmt.num_params = u16::from_le_bytes([payload[7], payload[8]]);
                    stmt.on.push((self.active, backend_id));
                    set_statement_id(payload, client_id);
                }
                _ => {
                    self.stmts.remove(client_id);
                }
            }
            *prepared = None;
        }
        let unscanned = &self.front_out.data()[self.out_ready..];
        let scan = match tracker.scan(unscanned) {
            Ok(scan) => scan,
            Err(e) => {
                let seq = tracker.next_seq();
                let failure = BackendFailure::Protocol(e.to_string());
                self.backend_failed(ctx, failure, seq);
                return;
            }
        };
        self.out_ready += scan.forwardable;
        match scan.state {
            ReplyState::InProgress => {}
            ReplyState::Done { status } => {
                self.last_status = status;
                // The server's status says where the transaction is: this
                // covers BEGIN sent along, autocommit=0 and implicit commits.
                if status & status::SERVER_STATUS_IN_TRANS != 0 {
                    self.transaction = Transaction::Open(self.active);
                } else if let Transaction::Open(_) = self.transaction {
                    self.transaction = Transaction::None;
                }
                // An error may have stopped a multi-statement before its SET
                // parts ran: only a clean reply is known to have run them.
                if !record.is_empty() && !tracker.ended_with_error() {
                    self.replay.append(record);
                    if let Some(back) = self.back.as_mut() {
                        back.applied = self.replay.len();
                    }
                }
                if request.is_some() {
                    // The server answered before it had the whole packet
                    // (it refused it): what follows cannot be followed.
                    self.drop_backend(ctx);
                    self.phase = Phase::Closing;
                } else if self.out_ready < self.front_out.len() {
                    // The client has its whole reply; the extra bytes are
                    // the server's fault, told at the next command.
                    self.front_out.truncate(self.out_ready);
                    self.phase = Phase::Idle;
                    let failure = BackendFailure::Protocol("bytes after the end of a reply".into());
                    self.fail_backend_in_phase(ctx, failure);
                } else {
                    self.phase = Phase::Idle;
                }
            }
            ReplyState::LocalInfile => {
                let next_seq = tracker.next_seq();
                if self.client.caps & caps::CLIENT_LOCAL_FILES == 0 {
                    // The client never allowed it (B7): a hostile or
                    // confused server; nothing is read from any file.
                    let failure = BackendFailure::Protocol(
                        "it asked for a local file the client did not offer".into(),
                    );
                    self.out_ready -= scan.forwardable;
                    self.backend_failed(ctx, failure, next_seq);
                    return;
                }
                let limit = ctx.shared.config.proxy.max_allowed_packet;
                self.phase = Phase::Infile(InfileRelay::new(next_seq, limit));
            }
        }
    }

    /// The backend failed; tell the client in whatever way the phase allows.
    fn fail_backend_in_phase(&mut self, ctx: &mut Ctx<'_>, failure: BackendFailure) {
        match &self.phase {
            Phase::BackendLogin { reply_seq } | Phase::ChangeUserBackend { reply_seq, .. } => {
                let seq = *reply_seq;
                self.backend_failed(ctx, failure, seq)
            }
            Phase::Relay {
                reply: Some(tracker),
                ..
            } => {
                let seq = tracker.next_seq();
                self.backend_failed(ctx, failure, seq)
            }
            Phase::Relay { reply: None, .. } | Phase::Infile(_) => {
                self.backend_failed(ctx, failure, 0)
            }
            _ => {
                // Idle (or still logging the client in): keep the client,
                // answer its next command with the cause.
                let target = self.drop_backend(ctx);
                self.back_lost = Some(format!("{target}: {}", describe(&failure)));
                self.in_ready = 0;
            }
        }
    }

    /// Sends the client an ERR for a backend failure and closes the session.
    fn backend_failed(&mut self, ctx: &mut Ctx<'_>, failure: BackendFailure, seq: u8) {
        // Bytes past `out_ready` are the head of a packet the tracker has not
        // passed: never sent, so the ERR cannot land inside a packet.
        self.front_out.truncate(self.out_ready);
        let target = self.drop_backend(ctx);
        let (code, message) = match &failure {
            BackendFailure::Connect(why) => (
                ErrorCode::CR_CONN_HOST_ERROR,
                format!("dbrouter: cannot connect to {target}: {why}"),
            ),
            BackendFailure::Timeout => (
                ErrorCode::CR_CONN_HOST_ERROR,
                format!(
                    "dbrouter: {target} did not answer within {} ms",
                    ctx.shared.config.proxy.connect_timeout_ms
                ),
            ),
            BackendFailure::Refused {
                code,
                sqlstate,
                message,
            } => {
                // Server errors keep their code and SQLSTATE; an access
                // denied after the proxy accepted the password means the
                // proxy and the server disagree about the account: say so.
                let text = if *code == ErrorCode::ER_ACCESS_DENIED_ERROR.code {
                    format!("dbrouter: {target} refused the login: {message}")
                } else {
                    message.clone()
                };
                let mut bytes = Vec::with_capacity(text.len() + 16);
                write_relayed_err(&mut bytes, seq, *code, sqlstate, &text);
                self.push_ready(&bytes);
                self.phase = Phase::Closing;
                return;
            }
            BackendFailure::Lost(when) => (
                ErrorCode::CR_SERVER_LOST,
                format!("dbrouter: lost connection to {target} {when}"),
            ),
            BackendFailure::Protocol(why) => (
                ErrorCode::CR_SERVER_LOST,
                format!("dbrouter: {target} broke the protocol ({why}); connection closed"),
            ),
        };
        log::warn!("session {}: {message}", self.key);
        self.send_err(seq, code, &message);
        self.phase = Phase::Closing;
    }

    // ----------------------------------------------------------------- client

    /// Acts on the client bytes held, as the phase allows. True if anything
    /// changed.
    fn advance(&mut self, ctx: &mut Ctx<'_>) -> bool {
        match &mut self.phase {
            Phase::Handshake => self.on_handshake_response(ctx),
            Phase::AuthSwitch => self.on_auth_switch_response(ctx),
            Phase::AwaitUsers(pending) => {
                let read_started = ctx.shared.users.load().read_started();
                if read_started.is_none_or(|at| at < pending.requested_at) {
                    return false;
                }
                let Phase::AwaitUsers(p) = std::mem::replace(&mut self.phase, Phase::Closing)
                else {
                    return false;
                };
                self.authenticate(ctx, p.user, p.response, p.reply_seq, p.purpose, false);
                true
            }
            Phase::Idle => {
                if ctx.draining {
                    self.phase = Phase::Closing;
                    return true;
                }
                self.on_command(ctx)
            }
            Phase::Relay {
                request: Some(relay),
                reply,
                ..
            } => {
                let unscanned = &self.front_in.data()[self.in_ready..];
                if unscanned.is_empty() {
                    return false;
                }
                match relay.scan(unscanned) {
                    Ok(scan) => {
                        self.in_ready += scan.forwardable;
                        if scan.done {
                            let no_reply = reply.is_none();
                            if no_reply {
                                self.phase = Phase::Idle;
                            } else if let Phase::Relay { request, .. } = &mut self.phase {
                                *request = None;
                            }
                        }
                        scan.forwardable > 0 || scan.done
                    }
                    Err(e) => {
                        self.client_protocol_error(ctx, &e);
                        true
                    }
                }
            }
            Phase::Relay {
                request: None,
                reply: None,
                ..
            } => {
                self.phase = Phase::Idle;
                true
            }
            Phase::Infile(relay) => {
                let unscanned = &self.front_in.data()[self.in_ready..];
                if unscanned.is_empty() {
                    return false;
                }
                match relay.scan(unscanned) {
                    Ok(scan) => {
                        self.in_ready += scan.forwardable;
                        if scan.done {
                            let tracker = ReplyTracker::new(Expect::InfileResult, self.client.caps)
                                .starting_at(relay.next_seq());
                            self.phase = Phase::Relay {
                                reply: Some(tracker),
                                request: None,
                                record: Vec::new(),
                                prepared: None,
                            };
                        }
                        scan.forwardable > 0 || scan.done
                    }
                    Err(e) => {
                        self.client_protocol_error(ctx, &e);
                        true
                    }
                }
            }
            Phase::ChangeUserSwitch { .. } => self.on_change_user_switch_response(ctx),
            Phase::Opening(_) | Phase::Prelude(..) => false,
            Phase::Relay { .. }
            | Phase::BackendLogin { .. }
            | Phase::ChangeUserBackend { .. }
            | Phase::Closing => false,
        }
    }

    /// The next whole packet of client bytes not yet cleared for the backend:
    /// (sequence id, payload length). Err when it can never fit the buffer.
    fn whole_client_packet(&self) -> Result<Option<(u8, usize)>, usize> {
        let avail = &self.front_in.data()[self.in_ready..];
        let Some(header) = frame::parse_header(avail) else {
            return Ok(None);
        };
        if header.len >= MAX_FRAME_PAYLOAD || HEADER_LEN + header.len > self.front_in.capacity() {
            return Err(header.len);
        }
        if avail.len() < HEADER_LEN + header.len {
            return Ok(None);
        }
        Ok(Some((header.seq, header.len)))
    }

    fn on_handshake_response(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let (seq, len) = match self.whole_client_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return false,
            Err(_) => {
                self.refuse_and_close(2, ErrorCode::ER_HANDSHAKE_ERROR, "Bad handshake");
                return true;
            }
        };
        if seq != 1 {
            self.refuse_and_close(
                2,
                ErrorCode::ER_NET_PACKETS_OUT_OF_ORDER,
                "Got packets out of order",
            );
            return true;
        }
        let payload = &self.front_in.data()[HEADER_LEN..HEADER_LEN + len];
        if is_ssl_request(payload) {
            self.refuse_and_close(
                2,
                ErrorCode::ER_HANDSHAKE_ERROR,
                "Bad handshake: dbrouter does not offer TLS yet; connect without SSL \
                 (mariadb --ssl=0, ssl-mode=DISABLED)",
            );
            return true;
        }
        let response = match HandshakeResponse::parse(payload) {
            Ok(r) => r,
            Err(e) => {
                log::debug!(
                    "session {}: bad handshake from {}: {e}",
                    self.key,
                    self.peer
                );
                self.refuse_and_close(2, ErrorCode::ER_HANDSHAKE_ERROR, "Bad handshake");
                return true;
            }
        };
        self.client = Client {
            caps: response.capabilities & ctx.shared.advertised_caps,
            charset: response.charset,
            max_packet: response.max_packet,
            user: response.username.to_vec(),
            database: response
                .database
                .filter(|d| !d.is_empty())
                .map(<[u8]>::to_vec),
            attributes: response.attributes.map(<[u8]>::to_vec),
        };
        let native = response.auth_plugin.is_none_or(|p| p == NATIVE_PASSWORD);
        let scramble_sized = matches!(response.auth_response.len(), 0 | 20);
        let auth = response.auth_response.to_vec();
        let can_switch = response.capabilities & caps::CLIENT_PLUGIN_AUTH != 0;
        self.front_in.consume(HEADER_LEN + len);
        if native && scramble_sized || !can_switch {
            let user = self.client.user.clone();
            self.authenticate(ctx, user, auth, 2, Purpose::Login, true);
        } else {
            // MySQL 8 clients open with caching_sha2_password: ask for
            // mysql_native_password with our scramble.
            self.send_auth_switch(2);
            self.phase = Phase::AuthSwitch;
        }
        true
    }

    fn on_auth_switch_response(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let (seq, len) = match self.whole_client_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return false,
            Err(_) => {
                self.refuse_and_close(4, ErrorCode::ER_HANDSHAKE_ERROR, "Bad handshake");
                return true;
            }
        };
        if seq != 3 {
            self.refuse_and_close(
                4,
                ErrorCode::ER_NET_PACKETS_OUT_OF_ORDER,
                "Got packets out of order",
            );
            return true;
        }
        let auth = self.front_in.data()[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.front_in.consume(HEADER_LEN + len);
        let user = self.client.user.clone();
        self.authenticate(ctx, user, auth, 4, Purpose::Login, true);
        true
    }

    fn send_auth_switch(&mut self, seq: u8) {
        let mut payload = Vec::with_capacity(48);
        let mut data = self.scramble.to_vec();
        data.push(0);
        AuthSwitchRequest {
            plugin: NATIVE_PASSWORD,
            data: &data,
        }
        .write(&mut payload);
        self.send_packet(seq, &payload);
    }

    fn authenticate(
        &mut self,
        ctx: &mut Ctx<'_>,
        user: Vec<u8>,
        response: Vec<u8>,
        reply_seq: u8,
        purpose: Purpose,
        may_refresh: bool,
    ) {
        let directory = ctx.shared.users.load();
        match directory.authenticate(&user, self.peer.ip(), &self.scramble, &response) {
            AuthOutcome::Accepted(login) => match purpose {
                Purpose::Login => self.start_backend_login(ctx, login, reply_seq),
                Purpose::ChangeUser(request) => {
                    self.start_change_user(ctx, user, login, request, reply_seq)
                }
            },
            AuthOutcome::UnknownUser if may_refresh && ctx.shared.refresh.is_some() => {
                let requested_at = Instant::now();
                if let Some(refresh) = &ctx.shared.refresh {
                    // A full channel means a re-read is already due.
                    let _ = refresh.try_send(crate::control::accounts::RefreshRequest);
                }
                self.phase = Phase::AwaitUsers(PendingAuth {
                    user,
                    response,
                    reply_seq,
                    purpose,
                    requested_at,
                });
            }
            AuthOutcome::UnknownUser | AuthOutcome::WrongPassword => {
                let message = format!(
                    "Access denied for user '{}'@'{}' (using password: {})",
                    String::from_utf8_lossy(&user),
                    self.peer.ip(),
                    if response.is_empty() { "NO" } else { "YES" }
                );
                match purpose {
                    Purpose::Login => self.refuse_and_close(
                        reply_seq,
                        ErrorCode::ER_ACCESS_DENIED_ERROR,
                        &message,
                    ),
                    // The server keeps a session whose COM_CHANGE_USER failed,
                    // logged in as before; so does the proxy (the backend
                    // was never asked).
                    Purpose::ChangeUser(_) => {
                        self.send_err(reply_seq, ErrorCode::ER_ACCESS_DENIED_ERROR, &message);
                        self.phase = Phase::Idle;
                    }
                }
            }
        }
    }

    /// The client is authenticated: log in to the designated shard now, so
    /// that the server's own refusals (an unknown database, say) reach the
    /// client at login as they would directly. Other shards are opened when
    /// a statement first needs them.
    fn start_backend_login(&mut self, ctx: &mut Ctx<'_>, login: BackendLogin, reply_seq: u8) {
        self.login = Some(login);
        let topology = ctx.shared.topology.load();
        let shards = topology.shards.shards().len();
        self.parked = (0..shards).map(|_| None).collect();
        self.active = topology.shards.default_shard().index;
        self.phase = Phase::BackendLogin { reply_seq };
        if let Err(e) = self.open_backend(ctx, &topology) {
            self.backend_failed(ctx, e, reply_seq);
        }
    }

    /// Starts connecting `self.back` to the master of shard `self.active`.
    fn open_backend(
        &mut self,
        ctx: &mut Ctx<'_>,
        topology: &Topology,
    ) -> Result<(), BackendFailure> {
        let shard = &topology.shards.shards()[self.active];
        let target = ShardAddr {
            shard: shard.id.0,
            addr: shard.master,
        };
        let at = ctx.now + ctx.shared.config.connect_timeout();
        self.arm_deadline(ctx, at);
        let mut back = Backend::connect(target)?;
        ctx.registry
            .register(
                &mut back.stream,
                back_token(self.key, self.active),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| BackendFailure::Connect(e.to_string()))?;
        self.back = Some(back);
        Ok(())
    }

    /// Makes shard `shard`'s backend the active one (parking the current).
    fn switch_to(&mut self, shard: usize) {
        if shard == self.active {
            return;
        }
        let current = self.back.take();
        if let Some(slot) = self.parked.get_mut(self.active) {
            *slot = current;
        }
        self.active = shard;
        self.back = self.parked.get_mut(shard).and_then(Option::take);
    }

    /// Readies the command's backend (open it, replay the session's
    /// statements, send the deferred BEGIN), then forwards the command.
    /// Called again after each of those steps completes.
    fn continue_dispatch(&mut self, ctx: &mut Ctx<'_>, mut dispatch: Dispatch) {
        self.switch_to(dispatch.shard);
        if self.back.is_none() {
            let topology = ctx.shared.topology.load();
            self.phase = Phase::Opening(dispatch);
            if let Err(e) = self.open_backend(ctx, &topology) {
                self.backend_failed(ctx, e, 1);
            }
            return;
        }
        let Some(back) = self.back.as_mut() else {
            return;
        };
        let prelude = if back.applied < self.replay.len() {
            Some(self.replay[back.applied].as_slice())
        } else if let (Transaction::Pending(begin), true) =
            (&self.transaction, dispatch.opens_transaction)
        {
            Some(begin.as_slice())
        } else {
            None
        };
        if let Some(payload) = prelude {
            if let Err(e) = back.send_command(payload) {
                self.backend_failed(ctx, e, 1);
                return;
            }
            let at = ctx.now + ctx.shared.config.connect_timeout();
            self.arm_deadline(ctx, at);
            self.phase = Phase::Prelude(dispatch, Prelude::Simple);
            return;
        }
        if let Some(id) = dispatch.stmt {
            let Some(stmt) = self.stmts.get_mut(id) else {
                let mut bytes = Vec::new();
                packet::write_err(
                    &mut bytes,
                    1,
                    ErrorCode::ER_UNKNOWN_STMT_HANDLER,
                    "Unknown prepared statement handler",
                );
                self.abandon(&dispatch, &bytes);
                return;
            };
            let Some(backend_id) = stmt.backend_id(dispatch.shard) else {
                // First use on this shard: prepare it there, then come back.
                let mut payload = Vec::with_capacity(stmt.sql.len() + 1);
                payload.push(com::COM_STMT_PREPARE);
                payload.extend_from_slice(&stmt.sql);
                if let Err(e) = back.send_command(&payload) {
                    self.backend_failed(ctx, e, 1);
                    return;
                }
                let tracker = ReplyTracker::new(Expect::Prepare, back.caps);
                let at = ctx.now + ctx.shared.config.connect_timeout();
                self.arm_deadline(ctx, at);
                self.phase = Phase::Prelude(dispatch, Prelude::Prepare { tracker, id: None });
                return;
            };
            let packet = self.in_ready..self.in_ready + dispatch.total;
            if let Some(types_sent) = dispatch.execute_types {
                stmt.last_shard = Some(dispatch.shard);
                let needs_types =
                    !types_sent && stmt.num_params > 0 && !stmt.types_on.contains(&dispatch.shard);
                if needs_types && !dispatch.streamed {
                    // The client sent the types once, to another shard: this
                    // server needs them, so the packet is rebuilt with them.
                    let payload = &self.front_in.data()[packet.start + HEADER_LEN..packet.end];
                    let sent = stmt
                        .types
                        .as_deref()
                        .and_then(|types| with_types(payload, stmt.num_params, types, backend_id))
                        .is_some_and(|p| back.send(0, &p).is_ok());
                    if sent {
                        stmt.types_on.push(dispatch.shard);
                    }
                    self.front_in.consume(dispatch.total);
                    if !sent {
                        self.send_err(
                            1,
                            ErrorCode::ER_UNKNOWN_ERROR,
                            "dbrouter: this execution goes to another shard than the one that \
                             received the parameter types; send them again (rebind) and retry",
                        );
                        self.phase = Phase::Idle;
                        return;
                    }
                    self.phase = Phase::Relay {
                        reply: Some(ReplyTracker::new(Expect::Execute, self.client.caps)),
                        request: None,
                        record: Vec::new(),
                        prepared: None,
                    };
                    return;
                }
                if types_sent && !stmt.types_on.contains(&dispatch.shard) {
                    stmt.types_on.push(dispatch.shard);
                }
            }
            // A streamed packet's id is in its first bytes, held at the front.
            let end = if dispatch.streamed {
                packet.start + HEADER_LEN + 5
            } else {
                packet.end
            };
            if let Some(payload) = self
                .front_in
                .data_mut()
                .get_mut(packet.start + HEADER_LEN..end)
            {
                set_statement_id(payload, backend_id);
            }
        }
        let record = std::mem::take(&mut dispatch.record);
        if dispatch.streamed {
            let max = ctx.shared.config.proxy.max_allowed_packet;
            self.phase = Phase::Relay {
                reply: dispatch
                    .expect
                    .map(|e| ReplyTracker::new(e, self.client.caps)),
                request: Some(PacketRelay::new(0, max)),
                record,
                prepared: dispatch.prepare,
            };
            return;
        }
        self.in_ready += dispatch.total;
        self.phase = match dispatch.expect {
            Some(expect) => Phase::Relay {
                reply: Some(ReplyTracker::new(expect, self.client.caps)),
                request: None,
                record,
                prepared: dispatch.prepare,
            },
            None => Phase::Idle,
        };
    }

    /// A command that will not run: the client gets `err` (a framed ERR).
    /// A whole packet is dropped and the session goes on; a streamed one
    /// cannot be skipped, so the session closes.
    fn abandon(&mut self, dispatch: &Dispatch, err: &[u8]) {
        self.push_ready(err);
        if dispatch.streamed {
            self.phase = Phase::Closing;
        } else {
            self.front_in.consume(dispatch.total);
            self.phase = Phase::Idle;
        }
    }

    /// An event came for a parked backend: between commands that can only
    /// mean it is going away. The client hears of it at its next command.
    fn check_parked(&mut self, ctx: &mut Ctx<'_>) {
        self.parked_events = false;
        for shard in 0..self.parked.len() {
            let Some(back) = self.parked[shard].as_mut() else {
                continue;
            };
            if !back.readable {
                continue;
            }
            match back.read_inbox() {
                Io::WouldBlock => back.readable = false,
                Io::Nothing => {}
                _ => {
                    if let Some(mut back) = self.parked[shard].take() {
                        let _ = ctx.registry.deregister(&mut back.stream);
                        self.stmts.forget_shard(shard);
                        self.back_lost = Some(format!(
                            "{}: connection closed while it was idle",
                            back.target
                        ));
                    }
                }
            }
        }
    }

    fn on_command(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if self.in_ready > 0 {
            // The previous command (one without a reply) is still on its way
            // to the backend; commands are handled at the front of the
            // buffer, so wait the few microseconds it takes.
            return false;
        }
        let avail = &self.front_in.data()[self.in_ready..];
        let Some(header) = frame::parse_header(avail) else {
            return false;
        };
        if header.seq != 0 {
            self.refuse_and_close(
                header.seq.wrapping_add(1),
                ErrorCode::ER_NET_PACKETS_OUT_OF_ORDER,
                "Got packets out of order",
            );
            return true;
        }
        let max = ctx.shared.config.proxy.max_allowed_packet;
        if header.len > max {
            self.refuse_and_close(
                1,
                ErrorCode::ER_NET_PACKET_TOO_LARGE,
                "Got a packet bigger than 'max_allowed_packet' bytes",
            );
            return true;
        }
        let whole = header.len < MAX_FRAME_PAYLOAD && avail.len() >= HEADER_LEN + header.len;
        if !whole {
            let fits = header.len < MAX_FRAME_PAYLOAD
                && HEADER_LEN + header.len <= self.front_in.capacity();
            if fits || avail.len() <= HEADER_LEN {
                return false; // the rest is on its way
            }
            return self.start_streamed_command(ctx, avail[HEADER_LEN]);
        }
        if let Some(cause) = self.back_lost.take() {
            let message = format!(
                "dbrouter: lost connection to {cause}; the session's state on the server is \
                 gone: reconnect"
            );
            self.refuse_and_close(1, ErrorCode::CR_SERVER_LOST, &message);
            return true;
        }
        let total = HEADER_LEN + header.len;
        let payload = &avail[HEADER_LEN..total];
        let command = match Command::decode(payload, self.client.caps) {
            Ok(c) => c,
            // The server reads an empty packet as COM_SLEEP: unknown.
            Err(CommandError::Empty) => {
                return self.answer_locally(
                    total,
                    ErrorCode::ER_UNKNOWN_COM_ERROR,
                    "Unknown command",
                )
            }
            Err(e) => {
                let message = format!("Malformed packet: {e}");
                return self.answer_locally(total, ErrorCode::ER_UNKNOWN_COM_ERROR, &message);
            }
        };
        if let Some(statement) = StatementCommand::of(&command) {
            return self.on_statement_command(ctx, total, statement);
        }
        let expect = match command {
            Command::Quit => {
                // Tell the server goodbye so it does not count an aborted
                // connection, then close.
                if let Some(back) = &mut self.back {
                    let _ = std::io::Write::write(&mut back.stream, &avail[..total]);
                }
                self.phase = Phase::Closing;
                self.front_in.clear();
                self.in_ready = 0;
                return true;
            }
            Command::ChangeUser(change) => {
                let change = ChangeUserRequest::from_command(&change, self.client.charset);
                return self.on_change_user(ctx, total, change);
            }
            Command::Refused(refused) => {
                let message = format!(
                    "dbrouter does not forward {} ({}): connect to the server directly",
                    refused.name, refused.why
                );
                return self.answer_locally(
                    total,
                    ErrorCode::ER_SPECIFIC_ACCESS_DENIED_ERROR,
                    &message,
                );
            }
            Command::Unknown(_) => {
                return self.answer_locally(
                    total,
                    ErrorCode::ER_UNKNOWN_COM_ERROR,
                    "Unknown command",
                )
            }
            // Everything else is relayed; the command knows its reply's shape.
            ref other => other.expect(),
        };
        let here = self.transaction_shard().unwrap_or(self.active);
        let (shard, record, opens_transaction) = match command {
            Command::Query(sql) => {
                let topology = ctx.shared.topology.load();
                let routed = match self.scan {
                    Some(opts) => route_query(sql, &topology, &opts),
                    None => route_uncertain(sql, &topology, ctx.shared.scan),
                };
                // SET and USE parts: followed (sql_mode) and kept for replay,
                // as COM_QUERY payloads of their own.
                let mut record = Vec::new();
                if let Ok(routed) = &routed {
                    for part in &routed.session_parts {
                        let text = &sql[part.clone()];
                        self.scan = follow_sql_mode(text, self.scan, ctx.shared.scan);
                        let mut item = Vec::with_capacity(text.len() + 1);
                        item.push(com::COM_QUERY);
                        item.extend_from_slice(text);
                        record.push(item);
                    }
                }
                let decision = routed.map(|r| r.decision);
                let begin = matches!(decision, Ok(Decision::Begin)).then(|| payload.to_vec());
                match decision {
                    Ok(Decision::Shard(shard)) => (shard, record, true),
                    Ok(Decision::LastUsed) => (here, record, false),
                    Ok(Decision::Session) => (here, record, false),
                    Ok(Decision::Begin) => match (&self.transaction, begin) {
                        (Transaction::Open(shard), _) => (*shard, Vec::new(), false),
                        (_, begin) => {
                            // Held until the first statement picks the shard.
                            self.transaction = Transaction::Pending(begin.unwrap_or_default());
                            self.front_in.consume(total);
                            let status = self.last_status | status::SERVER_STATUS_IN_TRANS;
                            self.send_ok(1, status);
                            return true;
                        }
                    },
                    Ok(Decision::Commit | Decision::Rollback) => match self.transaction {
                        Transaction::Pending(_) => {
                            // Nothing ran: nothing to end.
                            self.transaction = Transaction::None;
                            self.front_in.consume(total);
                            let status = self.last_status & !status::SERVER_STATUS_IN_TRANS;
                            self.send_ok(1, status);
                            return true;
                        }
                        _ => (here, Vec::new(), false),
                    },
                    Err(e) => return self.refuse_statement(total, &e),
                }
            }
            // Session state the other backends must get too.
            Command::InitDb(_) | Command::SetOption(_) => (here, vec![payload.to_vec()], false),
            Command::ResetConnection => {
                self.forget_session_state(ctx);
                (self.active, Vec::new(), false)
            }
            // Executing a prepared statement reads or writes tables: the
            // deferred BEGIN must reach its backend first.
            Command::StmtExecute { .. } => (here, Vec::new(), true),
            _ => (here, Vec::new(), false),
        };
        if let Some(open) = self.transaction_shard() {
            if shard != open {
                let message = format!(
                    "dbrouter: this transaction runs on shard {open} and this statement needs \
                     shard {shard}: commit or roll back first (transactions across shards \
                     are not supported yet)"
                );
                return self.answer_locally(total, ErrorCode::ER_UNKNOWN_ERROR, &message);
            }
        }
        let dispatch = Dispatch {
            shard,
            total,
            expect,
            record,
            opens_transaction,
            stmt: None,
            execute_types: None,
            prepare: None,
            streamed: false,
        };
        self.continue_dispatch(ctx, dispatch);
        true
    }

    /// COM_STMT_PREPARE / EXECUTE / FETCH / RESET / SEND_LONG_DATA / CLOSE:
    /// client ids mapped to the backends', each execution routed.
    fn on_statement_command(
        &mut self,
        ctx: &mut Ctx<'_>,
        total: usize,
        command: StatementCommand,
    ) -> bool {
        let here = self.transaction_shard().unwrap_or(self.active);
        let payload_range = HEADER_LEN..total;
        let unknown = |id: u32, name: &str| {
            format!("Unknown prepared statement handler ({id}) given to {name}")
        };
        let mut dispatch = Dispatch {
            shard: here,
            total,
            expect: None,
            record: Vec::new(),
            opens_transaction: false,
            stmt: None,
            execute_types: None,
            prepare: None,
            streamed: false,
        };
        match command {
            StatementCommand::Prepare => {
                let sql = &self.front_in.data()[HEADER_LEN + 1..total];
                let route = match self.statement_route(ctx, sql) {
                    Ok(route) => route,
                    Err(e) => return self.refuse_statement(total, &e),
                };
                let id = self.stmts.add(sql, route);
                dispatch.shard = match route {
                    StmtRoute::Fixed(shard) => shard,
                    StmtRoute::LastUsed | StmtRoute::PerExecute => here,
                };
                dispatch.expect = Some(Expect::Prepare);
                dispatch.prepare = Some(id);
            }
            StatementCommand::Execute(id) => {
                let Some(stmt) = self.stmts.get(id) else {
                    let message = unknown(id, "mysqld_stmt_execute");
                    return self.answer_locally(
                        total,
                        ErrorCode::ER_UNKNOWN_STMT_HANDLER,
                        &message,
                    );
                };
                if stmt.long_data_refused {
                    if let Some(stmt) = self.stmts.get_mut(id) {
                        stmt.long_data_refused = false;
                    }
                    return self.answer_locally(
                        total,
                        ErrorCode::ER_UNKNOWN_ERROR,
                        "dbrouter: COM_STMT_SEND_LONG_DATA cannot be routed for a statement whose \
                         shard key is a parameter (send the long value inline)",
                    );
                }
                let payload = &self.front_in.data()[payload_range];
                let topology = ctx.shared.topology.load();
                let params = ExecuteParams::parse(payload, stmt.num_params, stmt.types.as_deref());
                let types_sent = params.as_ref().map_or(true, |p| p.types_sent());
                let new_types = params
                    .as_ref()
                    .ok()
                    .filter(|p| p.types_sent() && stmt.types.as_deref() != Some(p.types()))
                    .map(|p| Box::<[u8]>::from(p.types()));
                let shard = match stmt.route {
                    StmtRoute::Fixed(shard) => Ok(shard),
                    StmtRoute::LastUsed => Ok(here),
                    StmtRoute::PerExecute => {
                        let opts = self.scan.unwrap_or(ctx.shared.scan);
                        match (analyze(&stmt.sql, &topology.schema, &opts), &params) {
                            (Ok(analysis), Ok(params)) => {
                                match route_prepared(&analysis, &topology, |i| params.value(i).ok())
                                {
                                    Ok(Decision::Shard(shard)) => Ok(shard),
                                    Ok(_) => Ok(here),
                                    Err(e) => Err(e.to_string()),
                                }
                            }
                            (Err(refusal), _) => Err(refusal.to_string()),
                            (_, Err(e)) => Err(format!(
                                "dbrouter: cannot read the shard key from the parameters: {e}"
                            )),
                        }
                    }
                };
                let shard = match shard {
                    Ok(shard) => shard,
                    Err(message) => {
                        return self.answer_locally(total, ErrorCode::ER_UNKNOWN_ERROR, &message)
                    }
                };
                if let (Some(types), Some(stmt)) = (new_types, self.stmts.get_mut(id)) {
                    // A new binding: every server must get these types anew.
                    stmt.types = Some(types);
                    stmt.types_on.clear();
                }
                dispatch.shard = shard;
                dispatch.expect = Some(Expect::Execute);
                dispatch.opens_transaction = true;
                dispatch.stmt = Some(id);
                dispatch.execute_types = Some(types_sent);
            }
            StatementCommand::Fetch(id) | StatementCommand::Reset(id) => {
                let Some(stmt) = self.stmts.get_mut(id) else {
                    let name = match command {
                        StatementCommand::Fetch(_) => "mysqld_stmt_fetch",
                        _ => "mysqld_stmt_reset",
                    };
                    let message = unknown(id, name);
                    return self.answer_locally(
                        total,
                        ErrorCode::ER_UNKNOWN_STMT_HANDLER,
                        &message,
                    );
                };
                stmt.long_data_refused = false;
                dispatch.shard = stmt.last_shard.unwrap_or(match stmt.route {
                    StmtRoute::Fixed(shard) => shard,
                    _ => here,
                });
                dispatch.expect = Some(match command {
                    StatementCommand::Fetch(_) => Expect::Fetch,
                    _ => Expect::Simple,
                });
                dispatch.stmt = Some(id);
            }
            StatementCommand::LongData(id) => {
                // No reply, whatever happens: errors surface at EXECUTE.
                let Some(stmt) = self.stmts.get_mut(id) else {
                    self.front_in.consume(total);
                    return true;
                };
                match stmt.route {
                    StmtRoute::Fixed(shard) => dispatch.shard = shard,
                    StmtRoute::LastUsed => {}
                    StmtRoute::PerExecute => {
                        stmt.long_data_refused = true;
                        self.front_in.consume(total);
                        return true;
                    }
                }
                dispatch.stmt = Some(id);
            }
            StatementCommand::Close(id) => {
                // No reply. Closed on every backend that has it; a parked
                // backend sends it before its next command.
                if let Some(stmt) = self.stmts.remove(id) {
                    for (shard, backend_id) in stmt.on {
                        let back = if shard == self.active {
                            self.back.as_mut()
                        } else {
                            self.parked.get_mut(shard).and_then(Option::as_mut)
                        };
                        if let Some(back) = back {
                            let mut close = [com::COM_STMT_CLOSE, 0, 0, 0, 0];
                            set_statement_id(&mut close, backend_id);
                            let _ = back.send(0, &close);
                        }
                    }
                }
                self.front_in.consume(total);
                return true;
            }
        }
        if let Some(open) = self.transaction_shard() {
            if dispatch.shard != open {
                let message = format!(
                    "dbrouter: this transaction runs on shard {open} and this statement needs \
                     shard {}: commit or roll back first (transactions across shards are not \
                     supported yet)",
                    dispatch.shard
                );
                if let Some(id) = dispatch.prepare {
                    self.stmts.remove(id);
                }
                return self.answer_locally(total, ErrorCode::ER_UNKNOWN_ERROR, &message);
            }
        }
        self.continue_dispatch(ctx, dispatch);
        true
    }

    /// Where a statement being prepared will run: a shard fixed by its
    /// literals, wherever the session is, or decided per execution by its
    /// `?` key. Refusals come now, at prepare time.
    fn statement_route(&self, ctx: &Ctx<'_>, sql: &[u8]) -> Result<StmtRoute, RouteError> {
        let topology = ctx.shared.topology.load();
        let opts = match self.scan {
            Some(opts) => opts,
            None => {
                // Only the shape matters here; route_uncertain checks that
                // every sql_mode reading agrees.
                route_uncertain(sql, &topology, ctx.shared.scan).or_else(|e| match e {
                    RouteError::BadKey { .. } => Ok(Routed {
                        decision: Decision::LastUsed,
                        session_parts: Default::default(),
                    }),
                    e => Err(e),
                })?;
                ctx.shared.scan
            }
        };
        let analysis = analyze(sql, &topology.schema, &opts).map_err(RouteError::Refused)?;
        let single = topology.shards.shards().len() == 1;
        let keyed_by_parameter = matches!(&analysis.target, Target::Keys { values, .. }
            if values.iter().any(|v| matches!(v, KeyValue::Placeholder(_))));
        let route = if keyed_by_parameter {
            StmtRoute::PerExecute
        } else {
            match route_prepared(&analysis, &topology, |_| None)? {
                Decision::Shard(shard) => StmtRoute::Fixed(shard),
                _ => StmtRoute::LastUsed,
            }
        };
        // With one shard every statement runs there: nothing to decide later.
        Ok(match route {
            StmtRoute::PerExecute if single => StmtRoute::Fixed(0),
            route => route,
        })
    }

    /// The shard of the open transaction, if any.
    fn transaction_shard(&self) -> Option<usize> {
        match self.transaction {
            Transaction::Open(shard) => Some(shard),
            _ => None,
        }
    }

    /// A statement the router refused: ERR, and the session lives on (a
    /// transaction stays usable).
    fn refuse_statement(&mut self, total: usize, error: &RouteError) -> bool {
        let message = error.to_string();
        self.answer_locally(total, ErrorCode::ER_UNKNOWN_ERROR, &message)
    }

    /// COM_RESET_CONNECTION: the session starts over. The other shards'
    /// connections hold the old state, so they are closed (reopened fresh
    /// when needed); the active one is reset by the server.
    fn forget_session_state(&mut self, ctx: &mut Ctx<'_>) {
        for slot in self.parked.iter_mut() {
            if let Some(mut back) = slot.take() {
                let _ = ctx.registry.deregister(&mut back.stream);
            }
        }
        self.replay.clear();
        self.stmts.clear();
        if let Some(back) = self.back.as_mut() {
            back.applied = 0;
        }
        self.transaction = Transaction::None;
        self.scan = Some(ctx.shared.scan);
    }

    /// A command packet too large to hold: forwarded as it arrives. Only
    /// commands that carry data can be that large.
    fn start_streamed_command(&mut self, ctx: &mut Ctx<'_>, command: u8) -> bool {
        let expect = match command {
            com::COM_QUERY => Some(Expect::Query),
            com::COM_STMT_PREPARE => Some(Expect::Prepare),
            com::COM_STMT_EXECUTE => Some(Expect::Execute),
            com::COM_STMT_SEND_LONG_DATA => None,
            _ => {
                self.refuse_and_close(
                    1,
                    ErrorCode::ER_NET_PACKET_TOO_LARGE,
                    "Got a packet bigger than 'max_allowed_packet' bytes",
                );
                return true;
            }
        };
        if self.back_lost.is_some() {
            let message = format!(
                "dbrouter: lost connection to {}; reconnect",
                self.back_lost.take().unwrap_or_default()
            );
            self.refuse_and_close(1, ErrorCode::CR_SERVER_LOST, &message);
            return true;
        }
        let here = self.transaction_shard().unwrap_or(self.active);
        let shards = ctx.shared.topology.load().shards.shards().len();
        let mut dispatch = Dispatch {
            shard: here,
            total: 0,
            expect,
            record: Vec::new(),
            opens_transaction: command != com::COM_STMT_PREPARE,
            stmt: None,
            execute_types: None,
            prepare: None,
            streamed: true,
        };
        // A packet too large to hold cannot be scanned for its key: with
        // one shard it can only go there; with several, only statements
        // whose shard is known without reading it can go on.
        let unroutable = |what: &str| {
            format!(
                "dbrouter: {what} larger than proxy.buffer_size cannot be scanned for its shard \
                 key; raise buffer_size, or send large values as parameters of a statement \
                 that binds its key to a literal"
            )
        };
        match command {
            com::COM_QUERY if shards > 1 => {
                self.refuse_and_close(
                    1,
                    ErrorCode::ER_NET_PACKET_TOO_LARGE,
                    &unroutable("a statement"),
                );
                return true;
            }
            com::COM_QUERY => {}
            com::COM_STMT_PREPARE => {
                if shards > 1 {
                    self.refuse_and_close(
                        1,
                        ErrorCode::ER_NET_PACKET_TOO_LARGE,
                        &unroutable("a statement"),
                    );
                    return true;
                }
                // Its text is not kept: with one shard it never needs
                // preparing elsewhere.
                dispatch.prepare = Some(self.stmts.add(b"", StmtRoute::Fixed(0)));
            }
            _ => {
                let data = self.front_in.data();
                let Some(id) = data.get(HEADER_LEN + 1..HEADER_LEN + 5) else {
                    return false; // the id is on its way
                };
                let id = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
                let route = self.stmts.get(id).map(|s| s.route);
                dispatch.shard = match route {
                    Some(StmtRoute::Fixed(shard)) => shard,
                    Some(StmtRoute::LastUsed) => here,
                    Some(StmtRoute::PerExecute) | None => {
                        let message = match route {
                            None => format!("Unknown prepared statement handler ({id})"),
                            _ => unroutable("a statement execution"),
                        };
                        self.refuse_and_close(1, ErrorCode::ER_UNKNOWN_STMT_HANDLER, &message);
                        return true;
                    }
                };
                dispatch.stmt = Some(id);
                if command == com::COM_STMT_EXECUTE {
                    // Its types flag may lie past what is held: assume sent.
                    dispatch.execute_types = Some(true);
                }
            }
        }
        if let Some(open) = self.transaction_shard() {
            if dispatch.shard != open {
                let message = format!(
                    "dbrouter: this transaction runs on shard {open} and this statement needs \
                     shard {}",
                    dispatch.shard
                );
                self.refuse_and_close(1, ErrorCode::ER_UNKNOWN_ERROR, &message);
                return true;
            }
        }
        self.continue_dispatch(ctx, dispatch);
        true
    }

    /// Answers a command the proxy handles itself with an ERR; the
    /// connection lives on.
    fn answer_locally(&mut self, total: usize, code: ErrorCode, message: &str) -> bool {
        if self.in_ready > 0 {
            return false; // earlier bytes must reach the backend first
        }
        self.front_in.consume(total);
        self.send_err(1, code, message);
        true
    }

    fn on_change_user(
        &mut self,
        ctx: &mut Ctx<'_>,
        total: usize,
        change: ChangeUserCommand,
    ) -> bool {
        if self.in_ready > 0 {
            return false;
        }
        let scramble_sized = matches!(change.response.len(), 0 | 20);
        let can_switch = self.client.caps & caps::CLIENT_PLUGIN_AUTH != 0;
        self.front_in.consume(total);
        if change.native && scramble_sized || !can_switch {
            let purpose = Purpose::ChangeUser(change.request);
            self.authenticate(ctx, change.user, change.response, 1, purpose, true);
        } else {
            self.scramble = Scramble::generate().0;
            self.send_auth_switch(1);
            self.phase = Phase::ChangeUserSwitch {
                user: change.user,
                request: change.request,
            };
        }
        true
    }

    fn on_change_user_switch_response(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let (seq, len) = match self.whole_client_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return false,
            Err(_) => {
                self.refuse_and_close(3, ErrorCode::ER_HANDSHAKE_ERROR, "Bad handshake");
                return true;
            }
        };
        if seq != 2 {
            self.refuse_and_close(
                3,
                ErrorCode::ER_NET_PACKETS_OUT_OF_ORDER,
                "Got packets out of order",
            );
            return true;
        }
        let response = self.front_in.data()[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.front_in.consume(HEADER_LEN + len);
        let Phase::ChangeUserSwitch { user, request } =
            std::mem::replace(&mut self.phase, Phase::Closing)
        else {
            return true;
        };
        self.authenticate(ctx, user, response, 3, Purpose::ChangeUser(request), true);
        true
    }

    fn start_change_user(
        &mut self,
        ctx: &mut Ctx<'_>,
        user: Vec<u8>,
        login: BackendLogin,
        request: ChangeUserRequest,
        reply_seq: u8,
    ) {
        let Some(back) = self.back.as_mut() else {
            let cause = self
                .back_lost
                .take()
                .unwrap_or_else(|| ctx.shared.shard_addr(self.active).to_string());
            let message = format!("dbrouter: lost connection to {cause}; reconnect");
            self.refuse_and_close(reply_seq, ErrorCode::CR_SERVER_LOST, &message);
            return;
        };
        if let Err(e) = back.change_user(
            &login,
            &request.database,
            request.charset,
            request.attributes.as_deref(),
        ) {
            self.backend_failed(ctx, e, reply_seq);
            return;
        }
        self.client.database = Some(request.database).filter(|d| !d.is_empty());
        self.phase = Phase::ChangeUserBackend {
            reply_seq,
            user,
            login,
        };
        let at = ctx.now + ctx.shared.config.connect_timeout();
        self.arm_deadline(ctx, at);
    }

    fn client_protocol_error(&mut self, ctx: &mut Ctx<'_>, e: &frame::FrameError) {
        let code = match e {
            frame::FrameError::OutOfOrder { .. } => ErrorCode::ER_NET_PACKETS_OUT_OF_ORDER,
            _ => ErrorCode::ER_NET_PACKET_TOO_LARGE,
        };
        // The backend holds half a packet: it cannot be used again.
        self.drop_backend(ctx);
        self.front_out.truncate(self.out_ready);
        let message = e.to_string();
        self.refuse_and_close(0, code, &message);
    }

    /// Closes the backend connection; returns where it was connected.
    fn drop_backend(&mut self, ctx: &mut Ctx<'_>) -> ShardAddr {
        self.stmts.forget_shard(self.active);
        match self.back.take() {
            Some(mut back) => {
                let _ = ctx.registry.deregister(&mut back.stream);
                back.target
            }
            None => ctx.shared.shard_addr(self.active),
        }
    }

    // ---------------------------------------------------------------- helpers

    fn refuse_and_close(&mut self, seq: u8, code: ErrorCode, message: &str) {
        self.send_err(seq, code, message);
        self.phase = Phase::Closing;
    }

    fn send_err(&mut self, seq: u8, code: ErrorCode, message: &str) {
        let mut bytes = Vec::with_capacity(message.len() + 16);
        packet::write_err(&mut bytes, seq, code, message);
        self.push_ready(&bytes);
    }

    fn send_ok(&mut self, seq: u8, status: u16) {
        let mut bytes = Vec::with_capacity(16);
        packet::write_ok(&mut bytes, seq, 0, 0, status, 0);
        self.push_ready(&bytes);
    }

    fn send_packet(&mut self, seq: u8, payload: &[u8]) {
        let mut bytes = Vec::with_capacity(payload.len() + HEADER_LEN);
        frame::write_packet(&mut bytes, seq, payload);
        self.push_ready(&bytes);
    }

    /// Queues proxy-made bytes for the client. They follow everything
    /// already cleared; nothing unscanned may sit before them.
    fn push_ready(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.out_ready, self.front_out.len());
        if self.front_out.push(bytes) {
            self.out_ready = self.front_out.len();
        } else {
            // Proxy-made packets are small and only sent when the client
            // buffer holds no reply: full means a bug, so close rather
            // than send a corrupt stream.
            log::error!(
                "session {}: client buffer full for a proxy packet",
                self.key
            );
            self.phase = Phase::Closing;
        }
    }

    fn arm_deadline(&mut self, ctx: &mut Ctx<'_>, at: Instant) {
        self.timer_generation = ctx.timers.schedule(at, self.key);
    }

    /// Generation 0 is never handed out: no deadline matches it.
    fn disarm_deadline(&mut self) {
        self.timer_generation = 0;
    }
}

/// One line on what happened to a backend, for the client's next ERR.
fn describe(failure: &BackendFailure) -> String {
    match failure {
        BackendFailure::Connect(why) => format!("cannot connect: {why}"),
        BackendFailure::Timeout => "timed out".into(),
        BackendFailure::Refused { message, .. } => message.clone(),
        BackendFailure::Lost(when) => format!("connection closed {when}"),
        BackendFailure::Protocol(why) => format!("protocol error: {why}"),
    }
}

/// An ERR packet carrying a server's own code and SQLSTATE (the
/// `ErrorCode` constants cover only what the proxy says itself).
fn write_relayed_err(out: &mut Vec<u8>, seq: u8, code: u16, sqlstate: &[u8; 5], message: &str) {
    let start = frame::begin_packet(out);
    out.push(0xff);
    out.extend_from_slice(&code.to_le_bytes());
    out.push(b'#');
    out.extend_from_slice(sqlstate);
    out.extend_from_slice(message.as_bytes());
    frame::finish_packet(out, start, seq);
}

/// Follows `SET ... sql_mode = '...'` so later statements are lexed as the
/// server lexes them (NO_BACKSLASH_ESCAPES, ANSI_QUOTES and the combination
/// modes that include ANSI_QUOTES). A value that is not a plain literal
/// cannot be followed: `None`, and statements are then routed only when
/// every reading agrees (see `route_uncertain`).
fn follow_sql_mode(
    sql: &[u8],
    current: Option<ScanOptions>,
    default: ScanOptions,
) -> Option<ScanOptions> {
    let Some(at) = find_ignore_case(sql, b"sql_mode") else {
        return current;
    };
    let current = current.unwrap_or(default);
    let rest = &sql[at + b"sql_mode".len()..];
    let Some(eq) = rest.iter().position(|&b| b == b'=') else {
        return Some(current); // read, not assigned (`@x = @@sql_mode`)
    };
    let value = rest[eq + 1..].trim_ascii();
    let value = value.strip_suffix(b";").unwrap_or(value).trim_ascii();
    if value.eq_ignore_ascii_case(b"default") {
        return Some(default);
    }
    let quoted = value.len() >= 2
        && (value[0] == b'\'' || value[0] == b'"')
        && value[value.len() - 1] == value[0]
        && !value[1..value.len() - 1].contains(&value[0])
        && !value.contains(&b'\\');
    if !quoted {
        return None;
    }
    let modes = &value[1..value.len() - 1];
    let has = |name: &[u8]| {
        modes
            .split(|&b| b == b',')
            .any(|m| m.trim_ascii().eq_ignore_ascii_case(name))
    };
    let ansi_quotes = [
        &b"ANSI_QUOTES"[..],
        b"ANSI",
        b"ORACLE",
        b"MSSQL",
        b"DB2",
        b"POSTGRESQL",
        b"MAXDB",
    ]
    .iter()
    .any(|m| has(m));
    Some(ScanOptions {
        no_backslash_escapes: has(b"NO_BACKSLASH_ESCAPES"),
        ansi_quotes,
        ..current
    })
}

/// Routes a statement whose session sql_mode is not known: under every
/// combination of the two lexing quirks, and only if all agree.
fn route_uncertain(
    sql: &[u8],
    topology: &Topology,
    base: ScanOptions,
) -> Result<Routed, RouteError> {
    let mut agreed: Option<Routed> = None;
    for (no_backslash_escapes, ansi_quotes) in
        [(false, false), (true, false), (false, true), (true, true)]
    {
        let opts = ScanOptions {
            no_backslash_escapes,
            ansi_quotes,
            ..base
        };
        let decision = route_query(sql, topology, &opts)?;
        match agreed {
            None => agreed = Some(decision),
            Some(ref d) if *d == decision => {}
            Some(_) => return Err(RouteError::UnknownSqlMode),
        }
    }
    agreed.ok_or(RouteError::UnknownSqlMode)
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// A COM_STMT_EXECUTE payload sent without parameter types, rebuilt with
/// `types` (and the backend's statement id), for a server that has not seen
/// them. `None` if the payload is not what its statement implies.
fn with_types(payload: &[u8], num_params: u16, types: &[u8], backend_id: u32) -> Option<Vec<u8>> {
    // command, id (4), flags, iteration count (4), NULL bitmap, bound flag
    let flag_at = 10 + usize::from(num_params).div_ceil(8);
    if payload.get(flag_at) != Some(&0) || types.len() != 2 * usize::from(num_params) {
        return None;
    }
    let mut out = Vec::with_capacity(payload.len() + types.len());
    out.extend_from_slice(&payload[..flag_at]);
    out.push(1);
    out.extend_from_slice(types);
    out.extend_from_slice(&payload[flag_at + 1..]);
    set_statement_id(&mut out, backend_id);
    Some(out)
}

/// The COM_STMT_* commands, by the client's statement id.
#[derive(Debug, Clone, Copy)]
enum StatementCommand {
    Prepare,
    Execute(u32),
    Fetch(u32),
    Reset(u32),
    LongData(u32),
    Close(u32),
}

impl StatementCommand {
    fn of(command: &Command<'_>) -> Option<StatementCommand> {
        Some(match *command {
            Command::StmtPrepare(_) => StatementCommand::Prepare,
            Command::StmtExecute { stmt_id, .. } => StatementCommand::Execute(stmt_id),
            Command::StmtFetch { stmt_id, .. } => StatementCommand::Fetch(stmt_id),
            Command::StmtReset(stmt_id) => StatementCommand::Reset(stmt_id),
            Command::StmtSendLongData { stmt_id, .. } => StatementCommand::LongData(stmt_id),
            Command::StmtClose(stmt_id) => StatementCommand::Close(stmt_id),
            _ => return None,
        })
    }
}
