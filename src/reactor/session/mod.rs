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
//! flow control does the rest. They hold storage only while they hold bytes:
//! one that is empty when the drive loop stops gives it back
//! (`release_empty_buffers`), so a session waiting for its client, or for
//! its backend's reply, holds none.
//!
//! A client that closes does not take back what it wrote before: commands
//! already read still go to the server (`front_eof`, `owes_backend`), so a
//! pipelined INSERT and COM_QUIT written just before a close are executed
//! and said goodbye to, as the server would have read them; then the
//! server's connection gets the end of input where the client's ended
//! (`pass_on_client_eof`), so a statement left waiting stops as it would.
//!
//! Files, one concern each: this one holds the session, its phases and the
//! drive loop; `login.rs` logs the client in (and handles COM_CHANGE_USER);
//! `dispatch.rs` routes commands to shards and readies their backends;
//! `backends.rs` moves bytes to and from backends and handles their failures.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry};

use crate::control::{AuthOutcome, BackendLogin};
use crate::protocol::auth::{Scramble, NATIVE_PASSWORD};
use crate::protocol::command::{ChangeUser, Command, CommandError};
use crate::protocol::consts::mariadb::MARIADB_CLIENT_CACHE_METADATA;
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

use super::backend::{fresh_marker, Backend, BackendFailure, LoginRequest, ShardAddr, Step};
use super::buffer::{Buffer, Io};
use super::pool::{Lend, Pool, PoolKey, Waiter};
use super::statements::{set_statement_id, Statements, StmtRoute};
use super::stats::ReactorStats;
use super::{back_token, Ctx};

mod backends;
mod counters;
mod dispatch;
mod login;
mod pins;
mod pooled;
mod words;

use counters::Counters;

use pins::{Effects, Pins};
pub use pins::{PinChange, PinReason};

use dispatch::{Dispatch, Prelude};
use login::{ChangeUserRequest, PendingAuth};

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
    /// The MariaDB extended capabilities agreed on, the same way.
    mariadb_caps: u32,
    charset: u8,
    max_packet: u32,
    user: Vec<u8>,
    database: Option<Vec<u8>>,
    attributes: Option<Vec<u8>>,
}

impl Client {
    /// A tracker for the reply to one of this client's commands, read as
    /// the client negotiated the protocol. `metadata_may_differ`: see
    /// `ReplyTracker::caching_metadata`.
    fn tracker(&self, expect: Expect, metadata_may_differ: bool) -> ReplyTracker {
        let tracker = ReplyTracker::new(expect, self.caps);
        if self.mariadb_caps & MARIADB_CLIENT_CACHE_METADATA != 0 {
            tracker.caching_metadata(metadata_may_differ)
        } else {
            tracker
        }
    }
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
    /// Transaction mode: the shard's pool is in use; queued until a
    /// connection comes back or `pool.wait_timeout_ms` passes.
    Waiting(Dispatch),
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
        /// COM_STMT_PREPARE: the client id its OK's id is rewritten to;
        /// taken once it is (`statement` keeps the id for the reply's end).
        prepared: Option<u32>,
        /// COM_STMT_PREPARE or COM_STMT_EXECUTE: the client id of the
        /// statement whose column definitions the reply may carry.
        statement: Option<u32>,
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
    /// The client's input has ended (it closed, or its socket failed). What
    /// it sent before still goes to the server, in order, as the server
    /// would have read it: clients such as sysbench write their statement
    /// closes and COM_QUIT and close at once. Once the backend has all of
    /// it, the backend's input ends too (`pass_on_client_eof`); the session
    /// closes when nothing it sent is owed to or by a backend
    /// (`owes_backend`).
    front_eof: bool,
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
    /// Shared with the pooled connections that ran it (transaction mode),
    /// which compare it with their next borrower's.
    replay: Arc<Vec<Vec<u8>>>,
    transaction: Transaction,
    /// State that keeps the client on its connection (transaction mode).
    pins: Pins,
    /// ROW_COUNT() and FOUND_ROWS() as this client last left them.
    counters: Counters,
    /// What the command being relayed does to `pins`, applied at its end.
    effects: Effects,
    /// What backend connections for this client log in with (transaction
    /// mode: which pooled connections it may borrow).
    pool_key: Option<Arc<PoolKey>>,
    /// When a wait for a pooled connection gives up (set by the first
    /// `Lend::Wait` of a command; a retry keeps it).
    wait_deadline: Option<Instant>,
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
    /// A drive of this batch left writes for its end (`holds_sends`); the
    /// reactor has listed the session. Cleared by `end_hold`.
    sends_held: bool,
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
            front_eof: false,
            front_in: Buffer::new(buffer_size),
            in_ready: 0,
            front_out: Buffer::new(buffer_size),
            out_ready: 0,
            back: None,
            active: 0,
            parked: Vec::new(),
            parked_events: false,
            back_lost: None,
            replay: Arc::default(),
            transaction: Transaction::None,
            pins: Pins::default(),
            counters: Counters::default(),
            effects: Effects::default(),
            pool_key: None,
            wait_deadline: None,
            last_status: status::SERVER_STATUS_AUTOCOMMIT,
            stmts: Statements::default(),
            scan: Some(ctx.shared.scan),
            phase: Phase::Handshake,
            client: Client::default(),
            scramble,
            login: None,
            timer_generation: 0,
            sends_held: false,
        };
        let greeting = Greeting {
            server_version: &ctx.shared.server_version,
            connection_id,
            scramble,
            capabilities: ctx.shared.advertised_caps,
            mariadb_capabilities: ctx.shared.advertised_mariadb_caps,
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

    /// Unregisters every socket; dropping the session closes them. A
    /// pooled connection still held goes too (it may be mid-transaction):
    /// its place in the pool is freed, and its pins end.
    pub fn deregister(&mut self, registry: &Registry, pool: &mut Pool, stats: &ReactorStats) {
        stats.record_pins(self.pins.unpublish());
        let _ = registry.deregister(&mut self.front);
        if let Some(back) = self.back.as_mut() {
            let _ = registry.deregister(&mut back.stream);
            pool.closed(self.active);
        }
        for (shard, slot) in self.parked.iter_mut().enumerate() {
            if let Some(back) = slot.as_mut() {
                let _ = registry.deregister(&mut back.stream);
                pool.closed(shard);
            }
        }
        if let Phase::Waiting(dispatch) = &self.phase {
            pool.forget_waiter(dispatch.shard, self.key);
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
            Phase::Waiting(_) => self.pool_timed_out(ctx),
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

            // 1. To the client (at the end of the event batch if relaying).
            if self.front_writable && self.out_ready > 0 {
                if self.holds_sends(ctx) {
                    self.sends_held = true;
                } else {
                    match self.send_to_client() {
                        Some(moved) => progress |= moved,
                        // Nothing can reach the client any more: close
                        // now, so a server streaming a reply to it stops too.
                        None => return Liveness::Closed,
                    }
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
                    // The client left (or its socket failed): its commands
                    // already read still go to the server (`front_eof`).
                    Io::Closed => {
                        self.front_eof = true;
                        self.front_readable = false;
                        progress = true;
                    }
                    Io::Nothing => {}
                }
            }

            // 4. Whatever the phase can do with the bytes held.
            progress |= self.advance(ctx);

            // 5. Transaction mode: done with the backend? Back to the pool.
            if ctx.pool.enabled {
                self.release_backends(ctx);
            }

            if !progress {
                if self.front_eof {
                    if self.out_ready == 0 && !self.owes_backend() {
                        // Nothing more will come from the client, and
                        // nothing it sent waits for a backend: done. (A
                        // command cut short by the close dies with the
                        // connections.)
                        return Liveness::Closed;
                    }
                    self.pass_on_client_eof();
                }
                self.release_empty_buffers();
                return Liveness::Alive;
            }
        }
        Liveness::Busy
    }

    /// Writes what is cleared for the client: whether bytes moved, `None`
    /// if the client is gone.
    pub fn send_to_client(&mut self) -> Option<bool> {
        if !self.front_writable || self.out_ready == 0 {
            return Some(false);
        }
        match self.front_out.write_to(&mut self.front, self.out_ready) {
            Io::Moved(n) => {
                self.out_ready -= n;
                Some(true)
            }
            Io::Short(n) => {
                self.out_ready -= n;
                self.front_writable = false;
                Some(true)
            }
            Io::WouldBlock => {
                self.front_writable = false;
                Some(false)
            }
            Io::Closed => None,
            Io::Nothing => Some(false),
        }
    }

    /// Whether this drive leaves the relay's writes to the end of the
    /// reactor's event batch (`Ctx::hold_sends`). Only a relaying session
    /// holds them: a login or a greeting goes at once.
    pub(super) fn holds_sends(&self, ctx: &Ctx<'_>) -> bool {
        ctx.hold_sends && self.back.as_ref().is_some_and(Backend::relaying)
    }

    /// A drive of this batch held writes back (`holds_sends`): the reactor
    /// lists the session, once, to drive it again at the batch's end.
    pub fn sends_held(&self) -> bool {
        self.sends_held
    }

    /// The batch's end: the held writes are made now.
    pub fn end_hold(&mut self) {
        self.sends_held = false;
    }

    /// The client's input has ended and the backend has all of it: that
    /// backend's input ends too (its write side is shut), as a direct
    /// client's close would end the server's, and at the same point in the
    /// stream. A statement that watches its connection (SLEEP, a lock wait)
    /// then stops within seconds instead of holding a server thread to its
    /// end; a reply already on its way still comes. Once per backend.
    fn pass_on_client_eof(&mut self) {
        let command_held = matches!(self.whole_client_packet(), Ok(Some(_)));
        if self.in_ready > 0 || command_held {
            return;
        }
        if let Some(back) = self.back.as_mut() {
            if !back.sent_eof && back.out.is_empty() && back.relaying() {
                let _ = back.stream.shutdown(std::net::Shutdown::Write);
                back.sent_eof = true;
            }
        }
    }

    /// Whether something the client sent is still on its way to a backend
    /// or waits for its answer: a command's bytes not yet written, a reply
    /// under way, a backend being opened, borrowed or readied for a command,
    /// a COM_CHANGE_USER at the server.
    fn owes_backend(&self) -> bool {
        self.in_ready > 0
            || matches!(
                self.phase,
                Phase::Relay {
                    reply: Some(_),
                    request: None,
                    ..
                } | Phase::Opening(_)
                    | Phase::Waiting(_)
                    | Phase::Prelude(..)
                    | Phase::ChangeUserBackend { .. }
            )
    }

    /// Nothing more moves for now: a buffer with nothing in it gives its
    /// storage back (to this reactor's spare blocks), whatever the phase.
    /// So a session costs no buffer memory while it waits, for its client
    /// or for its backend (a command gone to a slow statement no longer
    /// keeps the block it came in), and the reactor's few hot blocks are
    /// reused rather than one per waiting session. Per command that is a
    /// few pushes and pops on the spare list.
    fn release_empty_buffers(&mut self) {
        self.front_in.release_if_empty();
        self.front_out.release_if_empty();
    }

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
                            let tracker = self
                                .client
                                .tracker(Expect::InfileResult, false)
                                .starting_at(relay.next_seq());
                            self.phase = Phase::Relay {
                                reply: Some(tracker),
                                request: None,
                                record: Vec::new(),
                                prepared: None,
                                statement: None,
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
            Phase::Waiting(_) => self.retry_waiting(ctx),
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
