//! The per-core event loops.
//!
//! Each reactor is one thread pinned to one core, with its own mio `Poll`,
//! its own SO_REUSEPORT listener, and the sessions it accepted (each owning
//! its client socket, its backend connection and its buffers). Nothing on the
//! data path is shared between reactors: across threads go only the
//! read-mostly account snapshot (`ArcSwap`), a stop flag, wake-ups, and
//! each reactor's own counters (`stats.rs`), read by the admin thread.
//!
//! Rules of the loop (from mio): events are edge-triggered, so a socket is
//! read or written until it says `WouldBlock`, and its readiness is remembered
//! in the session until then; events may be spurious; the one `Waker` per
//! `Poll` is how other threads get a reactor's attention.

mod backend;
mod balance;
mod buffer;
mod listener;
mod pool;
mod session;
mod statements;
pub mod stats;
mod timer;

use std::io;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use balance::{Handoff, Peers};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;

pub use backend::ShardAddr;
pub use buffer::{Buffer, Io};

use crate::config::Config;
use crate::control::accounts::RefreshRequest;
use crate::control::UserDirectory;
use crate::route::scanner::ScanOptions;
use crate::route::topology::Topology;
use pool::Pool;
use session::{Liveness, Session};
pub use session::{PinChange, PinReason};
use stats::ReactorStats;
use timer::Timers;

/// A session's sockets share its slab key: slot 0 is the client, slot
/// `1 + i` the backend of shard index `i`.
const SLOT_BITS: u32 = 8;
/// Shards one session can address (the slot must fit in `SLOT_BITS`).
pub const MAX_SHARDS: usize = (1 << SLOT_BITS) - 1;
const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);
/// Events taken from the kernel per `poll`.
const EVENTS_CAPACITY: usize = 1024;
/// How often idle pooled connections are looked at for their timeouts.
const POOL_SWEEP: Duration = Duration::from_secs(1);

/// What every reactor reads and nobody on the data path writes.
pub struct Shared {
    pub config: Config,
    /// Who may log in; replaced whole by the control plane.
    pub users: Arc<ArcSwap<UserDirectory>>,
    /// Asks the control plane to re-read the backends' accounts.
    pub refresh: Option<crossbeam_channel::Sender<RefreshRequest>>,
    /// Tables, buckets, shards: read once per command, replaced whole.
    pub topology: Arc<ArcSwap<Topology>>,
    /// How statements are lexed before a session changes its sql_mode.
    pub scan: ScanOptions,
    /// What clients are told in the greeting.
    pub server_version: Vec<u8>,
    pub advertised_caps: u32,
    /// MariaDB extended capabilities offered (`protocol::consts::mariadb`).
    pub advertised_mariadb_caps: u32,
    pub server_charset: u8,
    /// Connection ids shown to clients; unique across reactors.
    pub connection_ids: AtomicU32,
    /// Set on SIGTERM/SIGINT; reactors stop accepting and drain.
    pub stopping: AtomicBool,
    /// What each reactor counts, by reactor id; the admin thread sums
    /// them (`admin::metrics`).
    pub stats: Box<[Arc<ReactorStats>]>,
}

impl Shared {
    /// Shard index `index` of the current topology, for messages.
    pub fn shard_addr(&self, index: usize) -> ShardAddr {
        let topology = self.topology.load();
        let shards = topology.shards.shards();
        let shard = shards.get(index).unwrap_or(topology.shards.default_shard());
        ShardAddr {
            shard: shard.id.0,
            addr: shard.master,
        }
    }
}

/// What a session may use while it is being driven.
pub struct Ctx<'a> {
    pub registry: &'a Registry,
    pub shared: &'a Shared,
    pub timers: &'a mut Timers,
    pub now: Instant,
    /// The reactor is shutting down: idle sessions close.
    pub draining: bool,
    /// This reactor's backend connections between borrowers (transaction
    /// mode).
    pub pool: &'a mut Pool,
    /// This reactor's counters.
    pub stats: &'a Arc<ReactorStats>,
    /// The reactor is going through a batch of events: a relaying session
    /// reads and parses now and leaves its writes for the batch's end
    /// (`Reactor::send_held`).
    pub hold_sends: bool,
}

/// A running reactor, as seen from the main thread.
pub struct ReactorHandle {
    pub waker: Arc<Waker>,
    pub thread: JoinHandle<()>,
}

/// Binds the listeners and starts one reactor per entry of `cores`,
/// reactor `i` pinned to `cores[i]` if given. Binding happens here, before
/// any thread starts, so a port in use is an error at startup rather than a
/// dead thread.
pub fn spawn_all(
    shared: Arc<Shared>,
    cores: &[Option<core_affinity::CoreId>],
) -> io::Result<Vec<ReactorHandle>> {
    let mut polls = Vec::with_capacity(cores.len());
    for _ in cores {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut listener = listener::bind_reuseport(shared.config.proxy.listen)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        polls.push((poll, waker, listener));
    }
    let shards = shared.topology.load().shards.shards().len();
    // Main sizes `stats` by the reactor count. Were it not (a bug), blocks
    // that are counted but never exported beat a panic in a release build.
    debug_assert_eq!(shared.stats.len(), cores.len());
    let stats: Box<[Arc<ReactorStats>]> = (0..cores.len())
        .map(|id| {
            let stats = shared.stats.get(id).cloned();
            stats.unwrap_or_else(|| Arc::new(ReactorStats::new(shards)))
        })
        .collect();
    let (inboxes, receivers) = Peers::channels(cores.len());
    let wakers: Vec<Arc<Waker>> = polls.iter().map(|(_, w, _)| w.clone()).collect();
    let peers = Arc::new(Peers::new(inboxes, wakers, stats.clone()));
    let mut handles = Vec::with_capacity(cores.len());
    let parts = polls.into_iter().zip(receivers).zip(cores);
    for (id, (((poll, waker, listener), inbox), core)) in parts.enumerate() {
        let reactor = Reactor {
            id,
            poll,
            listener: Some(listener),
            sessions: Slab::new(),
            timers: Timers::default(),
            pool: Pool::new(&shared.config, id, shards, stats[id].clone()),
            stats: stats[id].clone(),
            next_sweep: Instant::now() + POOL_SWEEP,
            shared: shared.clone(),
            peers: peers.clone(),
            inbox,
            again: Vec::new(),
            holding: false,
            held: Vec::new(),
            drain_deadline: None,
        };
        let core = *core;
        let thread = std::thread::Builder::new()
            .name(format!("dbrouter-reactor-{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core) {
                        log::warn!("reactor {id}: could not pin to core {}", core.id);
                    }
                }
                reactor.run();
            })?;
        handles.push(ReactorHandle { waker, thread });
    }
    Ok(handles)
}

/// The token of a session's client socket.
fn front_token(key: usize) -> Token {
    Token(key << SLOT_BITS)
}

/// The token of a session's backend connection to shard index `shard`.
fn back_token(key: usize, shard: usize) -> Token {
    debug_assert!(shard < MAX_SHARDS);
    Token((key << SLOT_BITS) | (shard + 1))
}

struct Reactor {
    id: usize,
    poll: Poll,
    listener: Option<mio::net::TcpListener>,
    sessions: Slab<Session>,
    timers: Timers,
    pool: Pool,
    stats: Arc<ReactorStats>,
    next_sweep: Instant,
    shared: Arc<Shared>,
    /// The other reactors, to hand clients to (`balance.rs`).
    peers: Arc<Peers>,
    /// Clients other reactors handed to this one.
    inbox: crossbeam_channel::Receiver<Handoff>,
    /// Sessions that stopped at their round limit with work left.
    again: Vec<usize>,
    /// While going through a batch of events (`Ctx::hold_sends`).
    holding: bool,
    /// Sessions that held writes back during this batch.
    held: Vec<usize>,
    drain_deadline: Option<Instant>,
}

impl Reactor {
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        log::info!(
            "reactor {} serving {}",
            self.id,
            self.shared.config.proxy.listen
        );
        loop {
            let timeout = if self.again.is_empty() {
                let timers = self.timers.poll_timeout(Instant::now());
                if self.pool.enabled {
                    let sweep = self.next_sweep.saturating_duration_since(Instant::now());
                    Some(timers.map_or(sweep, |t| t.min(sweep)))
                } else {
                    timers
                }
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("reactor {}: poll failed: {e}", self.id);
                    return;
                }
            }
            let now = Instant::now();
            self.holding = true;
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => self.on_wake(now),
                    Token(t) => {
                        let key = t >> SLOT_BITS;
                        let slot = t & ((1 << SLOT_BITS) - 1);
                        // Errors and hang-ups show up as readable/writable:
                        // the next read or write reports them.
                        let hup = event.is_read_closed() || event.is_error();
                        let readable = event.is_readable() || hup;
                        let writable =
                            event.is_writable() || event.is_write_closed() || event.is_error();
                        if let Some(session) = self.sessions.get_mut(key) {
                            session.on_event(slot, readable, writable, hup);
                            self.drive(key, now);
                        }
                    }
                }
            }
            self.holding = false;
            self.send_held(now);
            for key in std::mem::take(&mut self.again) {
                self.drive(key, now);
            }
            // Sessions a connection came back for (transaction mode); then
            // what they did not take goes to the next waiter or idle.
            while !self.pool.woken.is_empty() {
                for key in std::mem::take(&mut self.pool.woken) {
                    self.drive(key, now);
                }
                if self.pool.woken.is_empty() {
                    self.pool.reclaim(now, self.poll.registry());
                }
            }
            if self.pool.enabled && now >= self.next_sweep {
                self.pool.sweep(now, self.poll.registry());
                self.next_sweep = now + POOL_SWEEP;
            }
            while let Some((key, generation)) = self.timers.pop_expired(now) {
                self.on_deadline(key, generation, now);
            }
            if let Some(deadline) = self.drain_deadline {
                if self.sessions.is_empty() {
                    break;
                }
                if now >= deadline {
                    log::warn!(
                        "reactor {}: closing {} sessions still busy at the shutdown deadline",
                        self.id,
                        self.sessions.len()
                    );
                    break;
                }
            }
        }
        self.pool.close_all(self.poll.registry());
        // Sessions still busy at the deadline close with the reactor, and
        // so do clients handed over but not taken.
        let handed = self.inbox.try_iter().count();
        let left = (self.sessions.len() + handed) as i64;
        self.stats.clients_open.fetch_sub(left, Ordering::Relaxed);
        log::info!("reactor {} stopped", self.id);
    }

    fn ctx(&mut self, now: Instant) -> (Ctx<'_>, &mut Slab<Session>) {
        let ctx = Ctx {
            registry: self.poll.registry(),
            shared: &self.shared,
            timers: &mut self.timers,
            now,
            draining: self.drain_deadline.is_some(),
            pool: &mut self.pool,
            stats: &self.stats,
            hold_sends: self.holding,
        };
        (ctx, &mut self.sessions)
    }

    fn drive(&mut self, key: usize, now: Instant) {
        let (mut ctx, sessions) = self.ctx(now);
        let Some(session) = sessions.get_mut(key) else {
            return;
        };
        let listed = session.sends_held();
        // A bug in one session must not take down the reactor and every
        // other session on it: the session is closed and the bug logged.
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| session.drive(&mut ctx)))
            .unwrap_or_else(|_| {
                log::error!("reactor: session {key} panicked (a bug); closing it");
                Liveness::Closed
            });
        // Listed once per batch, however many events the session had.
        let list = session.sends_held() && !listed;
        match outcome {
            Liveness::Alive => {}
            Liveness::Busy => self.again.push(key),
            Liveness::Closed => return self.close(key),
        }
        if list {
            self.held.push(key);
        }
    }

    /// The end of a batch of events: the sessions that held writes back
    /// write now, every client's reply first, then the rest (commands to
    /// the servers). Each write wakes the thread that waits for it; woken
    /// together, clients and servers then run one after another on a core
    /// instead of alternating with the reactor and with each other between
    /// each read. Under sysbench at 64 threads this raised QPS 5% and took
    /// the proxy's CPU per query down 9% and sysbench's 8% (perf/README.md,
    /// 2026-11-22; `perf/switches.sh` counts the switches).
    fn send_held(&mut self, now: Instant) {
        // Drives outside a batch hold nothing, so `held` does not grow here.
        for i in 0..self.held.len() {
            if let Some(session) = self.sessions.get_mut(self.held[i]) {
                session.end_hold();
                // A client gone is found again, and closed, by the drive.
                let _ = session.send_to_client();
            }
        }
        for i in 0..self.held.len() {
            self.drive(self.held[i], now);
        }
        self.held.clear();
    }

    fn on_deadline(&mut self, key: usize, generation: u64, now: Instant) {
        let (mut ctx, sessions) = self.ctx(now);
        let Some(session) = sessions.get_mut(key) else {
            return;
        };
        match session.on_deadline(generation, &mut ctx) {
            Liveness::Alive => {}
            Liveness::Busy => self.again.push(key),
            Liveness::Closed => self.close(key),
        }
    }

    fn close(&mut self, key: usize) {
        if self.sessions.contains(key) {
            let mut session = self.sessions.remove(key);
            session.deregister(self.poll.registry(), &mut self.pool, &self.stats);
            self.stats.clients_open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Accepts until the kernel's queue is empty.
    fn accept(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (mut stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log and retry on the next event
                    // rather than spin.
                    log::warn!("reactor {}: accept failed: {e}", self.id);
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            self.stats.clients_accepted.fetch_add(1, Ordering::Relaxed);
            let to = self.peers.choose(self.id);
            if to != self.id {
                match self.peers.hand(to, Handoff { stream, peer }) {
                    Ok(()) => {
                        log::debug!("reactor {}: client {peer} handed to {to}", self.id);
                        continue;
                    }
                    Err(back) => stream = back.stream,
                }
            }
            self.stats.clients_open.fetch_add(1, Ordering::Relaxed);
            self.start_session(stream, peer, now);
        }
    }

    /// Clients other reactors handed over (already counted as this one's).
    fn take_handoffs(&mut self, now: Instant) {
        while let Ok(Handoff { stream, peer }) = self.inbox.try_recv() {
            if self.drain_deadline.is_some() {
                // Stopping: the client is closed as if it came too late.
                self.stats.clients_open.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            self.start_session(stream, peer, now);
        }
    }

    /// Registers a client counted in `clients_open` and starts its session.
    fn start_session(&mut self, mut stream: mio::net::TcpStream, peer: SocketAddr, now: Instant) {
        let entry = self.sessions.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            front_token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("reactor {}: cannot register a client: {e}", self.id);
            self.stats.clients_open.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let connection_id = self.shared.connection_ids.fetch_add(1, Ordering::Relaxed);
        let mut ctx = Ctx {
            registry: self.poll.registry(),
            shared: &self.shared,
            timers: &mut self.timers,
            now,
            draining: false,
            pool: &mut self.pool,
            stats: &self.stats,
            hold_sends: false,
        };
        let session = Session::new(key, stream, peer, connection_id, &mut ctx);
        entry.insert(session);
        log::debug!("reactor {}: session {key} from {peer}", self.id);
    }

    /// Another thread wants something: shutdown, new accounts to look at,
    /// or clients handed over.
    fn on_wake(&mut self, now: Instant) {
        if self.shared.stopping.load(Ordering::Acquire) && self.drain_deadline.is_none() {
            if let Some(mut listener) = self.listener.take() {
                let _ = self.poll.registry().deregister(&mut listener);
            }
            self.drain_deadline = Some(now + self.shared.config.shutdown_timeout());
            log::info!(
                "reactor {}: stopping; {} sessions to finish",
                self.id,
                self.sessions.len()
            );
            let idle: Vec<usize> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.is_idle())
                .map(|(k, _)| k)
                .collect();
            for key in idle {
                self.close(key);
            }
            // Busy ones close when their statement ends (they see
            // `draining` when they come back to Idle).
        }
        let waiting: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.awaits_users())
            .map(|(k, _)| k)
            .collect();
        for key in waiting {
            self.drive(key, now);
        }
        self.take_handoffs(now);
    }
}
