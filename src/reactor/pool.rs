//! The backend connections of `pool_mode = "transaction"`, one pool per
//! reactor (each reactor owns its sockets; nothing here is shared).
//!
//! A session borrows a connection for one statement outside a transaction,
//! or for a whole transaction, and gives it back when its reply is done
//! (`Session::release_backends`). Connections are grouped by everything that
//! was fixed at their login (user, database, character set, capabilities):
//! a connection is only lent to a session that would have logged in alike.
//! What a session changed later (SET, USE) travels with the connection as
//! the list of statements it ran (`Backend::state`), so a borrower with the
//! same list runs nothing extra, one whose list extends it runs only the
//! rest; a borrower is lent the most recently returned connection whose list
//! fits, and when none does, a fresh one.
//!
//! Each reactor may open its share of `pool.max_per_shard`
//! (`Config::pool_share`), so the process never exceeds the maximum and no
//! lock is taken. A session finding its reactor's share in use waits in a
//! bounded queue and is woken when a connection comes back, or gets an ERR
//! naming the shard after `pool.wait_timeout_ms`.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Registry;

use crate::config::Config;
use crate::protocol::consts::com::COM_QUIT;

use super::backend::Backend;
use super::stats::ReactorStats;

/// What a backend connection was logged in with: connections are lent only
/// to sessions that would log in alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    pub user: Vec<u8>,
    pub database: Option<Vec<u8>>,
    pub charset: u8,
    pub caps: u32,
    pub mariadb_caps: u32,
}

/// An idle connection and when it was given back.
struct Idle {
    back: Backend,
    since: Instant,
}

struct Group {
    key: Arc<PoolKey>,
    /// Most recently returned last: lending the warmest one keeps the others
    /// idle long enough to be closed when the load drops.
    idle: Vec<Idle>,
}

#[derive(Default)]
struct ShardPool {
    groups: Vec<Group>,
    /// Connections of this shard this reactor holds: idle, lent or opening.
    open: usize,
    /// Session keys waiting for a connection, oldest first.
    waiters: VecDeque<usize>,
}

/// Who asks `Pool::lend`: a session key, and whether it was waiting
/// already (woken, then beaten to the connection by another).
#[derive(Debug, Clone, Copy)]
pub struct Waiter {
    pub key: usize,
    pub again: bool,
}

impl ShardPool {
    /// A connection without waiting, if there is one (see `Pool::lend`).
    fn take(
        &mut self,
        key: &PoolKey,
        state: &[Vec<u8>],
        share: usize,
        check_after: Duration,
        now: Instant,
        registry: &Registry,
    ) -> Option<Lend> {
        if let Some(group) = self.groups.iter_mut().find(|g| *g.key == *key) {
            while let Some(at) = group.idle.iter().rposition(|i| fits(&i.back, state)) {
                let idle = group.idle.remove(at);
                let mut back = idle.back;
                // A connection idle a while may have been closed by the
                // server (wait_timeout, KILL, restart): one non-blocking read
                // tells, without a round trip. Silence means alive.
                if now.duration_since(idle.since) >= check_after && !back.probe_idle() {
                    log::debug!("pool: {} closed while idle; dropped", back.target);
                    retire(&mut back, registry);
                    self.open -= 1;
                    continue;
                }
                return Some(Lend::Idle(back));
            }
        }
        if self.open < share {
            self.open += 1;
            return Some(Lend::Open);
        }
        // At the share: one of the same login whatever its state (the
        // borrower resets it), else close one logged in for others.
        if let Some(group) = self.groups.iter_mut().find(|g| *g.key == *key) {
            if let Some(idle) = group.idle.pop() {
                return Some(Lend::Idle(idle.back));
            }
        }
        let group = self.groups.iter_mut().find(|g| !g.idle.is_empty())?;
        let mut idle = group.idle.pop()?;
        retire(&mut idle.back, registry);
        Some(Lend::Open) // its count passes to the new one
    }
}

/// What `Pool::lend` found. Returned once per borrow and moved straight
/// into the session: boxing the connection would cost an allocation each
/// time for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Lend {
    /// An idle connection, ready for the session to register.
    Idle(Backend),
    /// None idle, but the session may open one (counted already).
    Open,
    /// The reactor's share is in use: wait (the session is queued).
    Wait,
    /// The share is in use and the queue is full.
    Exhausted,
}

pub struct Pool {
    /// Only `pool_mode = "transaction"` lends connections; in session mode
    /// the pool stays empty and counts nothing.
    pub enabled: bool,
    shards: Vec<ShardPool>,
    share: usize,
    max_waiting: usize,
    idle_timeout: Duration,
    max_lifetime: Duration,
    check_after: Duration,
    /// Sessions to drive because a connection came back for them.
    pub woken: Vec<usize>,
    /// Connections handed to a woken waiter (session key, shard, login,
    /// connection): kept for it, so that a client arriving meanwhile cannot
    /// take it first and starve the queue. Unclaimed ones go back to the
    /// pool (`reclaim`).
    handoff: Vec<(usize, usize, Arc<PoolKey>, Backend)>,
    /// The waiting and exhausted counts are published here (the open
    /// connections are counted by the connections themselves).
    stats: Arc<ReactorStats>,
}

impl Pool {
    pub fn new(config: &Config, reactor: usize, shards: usize, stats: Arc<ReactorStats>) -> Pool {
        let pool = &config.pool;
        Pool {
            enabled: config.proxy.pool_mode == crate::config::PoolMode::Transaction,
            shards: (0..shards).map(|_| ShardPool::default()).collect(),
            share: config.pool_share(reactor),
            max_waiting: pool.max_waiting,
            idle_timeout: Duration::from_millis(pool.idle_timeout_ms),
            max_lifetime: Duration::from_millis(pool.max_lifetime_ms),
            check_after: Duration::from_millis(pool.check_after_ms),
            woken: Vec::new(),
            handoff: Vec::new(),
            stats,
        }
    }

    /// Publishes a change of shard `shard`'s queue length.
    fn waiting_changed(&self, shard: usize, delta: i64) {
        if let Some(s) = self.stats.shard(shard) {
            s.pool_waiting.fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// Counts a statement refused because the pool was exhausted.
    fn exhausted(&self, shard: usize) {
        if let Some(s) = self.stats.shard(shard) {
            s.pool_exhausted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection of `shard` for a session logged in as `key` whose
    /// session statements so far are `state`: the most recently returned
    /// idle one whose state fits (see `fits`), else the right to open one;
    /// at the reactor's share, an idle one of the same login whatever its
    /// state (the session resets it), else one of another login is closed
    /// to make room, else a place in the queue.
    pub fn lend(
        &mut self,
        shard: usize,
        key: &PoolKey,
        state: &[Vec<u8>],
        session: Waiter,
        now: Instant,
        registry: &Registry,
    ) -> Lend {
        if let Some(at) = self
            .handoff
            .iter()
            .position(|(k, s, _, _)| *k == session.key && *s == shard)
        {
            let (_, _, login, back) = self.handoff.swap_remove(at);
            if *login == *key {
                return Lend::Idle(back);
            }
            // Logged in for someone else: back among the idle ones.
            self.keep_idle(shard, &login, back, now);
        }
        let Some(pool) = self.shards.get_mut(shard) else {
            return Lend::Open;
        };
        // Clients already waiting go first.
        let queued = !pool.waiters.is_empty() && !session.again;
        if !queued {
            let found = pool.take(key, state, self.share, self.check_after, now, registry);
            if let Some(lend) = found {
                return lend;
            }
        }
        if pool.waiters.len() >= self.max_waiting {
            self.exhausted(shard);
            return Lend::Exhausted;
        }
        if !pool.waiters.contains(&session.key) {
            // One woken and beaten to the connection keeps its turn.
            if session.again {
                pool.waiters.push_front(session.key);
            } else {
                pool.waiters.push_back(session.key);
            }
            self.waiting_changed(shard, 1);
        }
        Lend::Wait
    }

    /// A connection comes back after a session's statement or transaction.
    /// It is kept if it is healthy and not too old, else closed.
    pub fn give_back(
        &mut self,
        shard: usize,
        key: &Arc<PoolKey>,
        back: Backend,
        now: Instant,
        registry: &Registry,
    ) {
        let Some(pool) = self.shards.get_mut(shard) else {
            return;
        };
        let mut back = back;
        if !back.reusable() || now.duration_since(back.born) >= self.max_lifetime {
            retire(&mut back, registry);
            pool.open -= 1;
            if let Some(waiter) = pool.waiters.pop_front() {
                self.woken.push(waiter); // it may open one now
                self.waiting_changed(shard, -1);
            }
        } else if let Some(waiter) = pool.waiters.pop_front() {
            self.handoff.push((waiter, shard, key.clone(), back));
            self.woken.push(waiter);
            self.waiting_changed(shard, -1);
        } else {
            self.keep_idle(shard, key, back, now);
        }
    }

    fn keep_idle(&mut self, shard: usize, key: &Arc<PoolKey>, back: Backend, now: Instant) {
        let Some(pool) = self.shards.get_mut(shard) else {
            return;
        };
        let idle = Idle { back, since: now };
        match pool.groups.iter_mut().find(|g| *g.key == **key) {
            Some(group) => group.idle.push(idle),
            None => pool.groups.push(Group {
                key: key.clone(),
                idle: vec![idle],
            }),
        }
    }

    /// Connections handed to woken sessions that did not take them (they
    /// had left, or stopped waiting): to the next waiter, or idle. Called by
    /// the reactor once the woken sessions were driven; true if it woke
    /// more.
    pub fn reclaim(&mut self, now: Instant, registry: &Registry) -> bool {
        for (_, shard, key, back) in std::mem::take(&mut self.handoff) {
            self.give_back(shard, &key, back, now, registry);
        }
        !self.woken.is_empty()
    }

    /// A lent (or opening) connection was closed by its session.
    pub fn closed(&mut self, shard: usize) {
        if !self.enabled {
            return;
        }
        if let Some(pool) = self.shards.get_mut(shard) {
            pool.open = pool.open.saturating_sub(1);
            if let Some(waiter) = pool.waiters.pop_front() {
                self.woken.push(waiter);
                self.waiting_changed(shard, -1);
            }
        }
    }

    /// Closes connections idle longer than `idle_timeout` or older than
    /// `max_lifetime`. Called from the reactor loop now and then.
    pub fn sweep(&mut self, now: Instant, registry: &Registry) {
        for pool in &mut self.shards {
            for group in &mut pool.groups {
                let before = group.idle.len();
                group.idle.retain_mut(|idle| {
                    let keep = now.duration_since(idle.since) < self.idle_timeout
                        && now.duration_since(idle.back.born) < self.max_lifetime;
                    if !keep {
                        retire(&mut idle.back, registry);
                    }
                    keep
                });
                pool.open -= before - group.idle.len();
            }
            pool.groups.retain(|g| !g.idle.is_empty());
        }
    }

    /// Closes every idle connection (the reactor stops).
    pub fn close_all(&mut self, registry: &Registry) {
        for pool in &mut self.shards {
            for group in pool.groups.drain(..) {
                for mut idle in group.idle {
                    retire(&mut idle.back, registry);
                }
            }
        }
        for (_, _, _, mut back) in self.handoff.drain(..) {
            retire(&mut back, registry);
        }
    }

    /// Stops waiting: the session got its connection, gave up or left.
    pub fn forget_waiter(&mut self, shard: usize, session: usize) {
        if let Some(pool) = self.shards.get_mut(shard) {
            let before = pool.waiters.len();
            pool.waiters.retain(|&k| k != session);
            let gone = before - pool.waiters.len();
            if gone > 0 {
                self.waiting_changed(shard, -(gone as i64));
            }
        }
    }

    /// A session waited `pool.wait_timeout_ms` in vain: it stops waiting,
    /// and its statement is refused (counted as exhausted).
    pub fn timed_out(&mut self, shard: usize, session: usize) {
        self.forget_waiter(shard, session);
        self.exhausted(shard);
    }
}

/// Whether a connection's session statements are a prefix of a borrower's
/// (`state`): the borrower then runs only the rest. Sessions that never
/// changed anything share the empty list, so they fit everywhere empty.
pub fn fits(back: &Backend, state: &[Vec<u8>]) -> bool {
    back.applied <= state.len()
        && (std::ptr::eq(back.state.as_slice(), state)
            || back.state.get(..back.applied) == state.get(..back.applied))
}

/// Closes a connection the pool no longer wants, saying goodbye first so
/// the server does not count an aborted connection. Five bytes into an idle
/// socket: the write does not block.
fn retire(back: &mut Backend, registry: &Registry) {
    if back.reusable() {
        let _ = std::io::Write::write(&mut back.stream, &[1, 0, 0, 0, COM_QUIT]);
    }
    let _ = registry.deregister(&mut back.stream);
}
