//! Transaction mode (`pool_mode = "transaction"`): borrowing a backend
//! connection from the reactor's pool before a command, and giving it back
//! once the session is between commands, outside a transaction and not
//! pinned (`pins.rs`). See `reactor/pool.rs` for the pool itself.

use super::*;

impl Session {
    /// What backend connections for this client log in with.
    pub(super) fn set_pool_key(&mut self) {
        // Shared (`Arc`): the pool keeps it with each connection given
        // back or handed to a waiter, once per statement.
        self.pool_key = self.login.as_ref().map(|login| {
            Arc::new(PoolKey {
                user: login.user.clone(),
                database: self.client.database.clone(),
                charset: self.client.charset,
                caps: self.client.caps,
                mariadb_caps: self.client.mariadb_caps,
            })
        });
    }

    /// Gets shard `dispatch.shard`'s backend for a command: borrowed, newly
    /// opened, or waited for. The dispatch goes on (or waits) from here.
    pub(super) fn borrow_backend(&mut self, ctx: &mut Ctx<'_>, dispatch: Dispatch) {
        let shard = dispatch.shard;
        let Some(key) = self.pool_key.as_ref() else {
            // Not logged in yet: cannot happen for a command; refuse it.
            let mut bytes = Vec::new();
            packet::write_err(&mut bytes, 1, ErrorCode::ER_UNKNOWN_ERROR, "not logged in");
            self.abandon(&dispatch, &bytes);
            return;
        };
        let waiter = Waiter {
            key: self.key,
            again: self.wait_deadline.is_some(),
        };
        match ctx
            .pool
            .lend(shard, key, &self.replay, waiter, ctx.now, ctx.registry)
        {
            Lend::Idle(back) => {
                if self.adopt(ctx, back) {
                    self.continue_dispatch(ctx, dispatch);
                } else {
                    // Its state does not fit this client: replaced by a new
                    // connection (the old one's place in the pool passes on).
                    self.open_for(ctx, dispatch);
                }
            }
            Lend::Open => self.open_for(ctx, dispatch),
            Lend::Wait => {
                let timeout = ctx.shared.config.pool_wait_timeout();
                let at = *self.wait_deadline.get_or_insert(ctx.now + timeout);
                self.arm_deadline(ctx, at);
                self.phase = Phase::Waiting(dispatch);
            }
            Lend::Exhausted => {
                let message = self.exhausted_message(ctx, shard, "and too many clients wait");
                let mut bytes = Vec::new();
                packet::write_err(&mut bytes, 1, ErrorCode::ER_CON_COUNT_ERROR, &message);
                self.abandon(&dispatch, &bytes);
            }
        }
    }

    /// Opens a new connection for the dispatch (the pool counted it).
    fn open_for(&mut self, ctx: &mut Ctx<'_>, dispatch: Dispatch) {
        let topology = ctx.shared.topology.load();
        self.phase = Phase::Opening(dispatch);
        if let Err(e) = self.open_backend(ctx, &topology) {
            self.backend_failed(ctx, e, 1);
        }
    }

    /// Takes a pooled connection as the active backend. Session state it
    /// carries that is not a prefix of this client's is undone first
    /// (COM_RESET_CONNECTION, and COM_INIT_DB back to the login database if
    /// it changed): a round trip or two instead of a new login. False (and
    /// the connection closed) only if the database cannot be undone: a
    /// client that logged in without one cannot go back to none.
    pub(super) fn adopt(&mut self, ctx: &mut Ctx<'_>, mut back: Backend) -> bool {
        if !super::super::pool::fits(&back, &self.replay) {
            let changed_database = back.state[..back.applied.min(back.state.len())]
                .iter()
                .any(|e| dispatch::is_database_change(e));
            if changed_database && self.client.database.is_none() {
                let _ = ctx.registry.deregister(&mut back.stream);
                return false;
            }
            back.reset_pending = true;
            back.init_db_pending = changed_database;
            back.applied = 0;
        }
        if !self.counters.marked(back.marker) {
            // Another client's stretch on this connection ends here.
            back.marker = fresh_marker();
        }
        let token = back_token(self.key, self.active);
        if back.token != Some(token) {
            let interest = Interest::READABLE | Interest::WRITABLE;
            if ctx
                .registry
                .reregister(&mut back.stream, token, interest)
                .is_err()
            {
                let _ = ctx.registry.deregister(&mut back.stream);
                return false;
            }
            back.token = Some(token);
        }
        // An idle socket can take bytes; what it reads arrives as events.
        back.writable = true;
        back.readable = false;
        back.hup = false;
        self.back = Some(back);
        true
    }

    /// A waiting session was woken (or driven): try the pool again.
    pub(super) fn retry_waiting(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let Phase::Waiting(dispatch) = std::mem::replace(&mut self.phase, Phase::Closing) else {
            return false;
        };
        let shard = dispatch.shard;
        self.borrow_backend(ctx, dispatch);
        if matches!(self.phase, Phase::Waiting(_)) {
            return false;
        }
        ctx.pool.forget_waiter(shard, self.key);
        self.wait_deadline = None;
        self.disarm_deadline_if_waiting_done();
        true
    }

    fn disarm_deadline_if_waiting_done(&mut self) {
        // Opening and preludes arm their own deadline; a command relayed
        // now needs none.
        if matches!(self.phase, Phase::Idle | Phase::Relay { .. }) {
            self.disarm_deadline();
        }
    }

    /// `pool.wait_timeout_ms` passed with the pool still in use.
    pub(super) fn pool_timed_out(&mut self, ctx: &mut Ctx<'_>) {
        let Phase::Waiting(dispatch) = std::mem::replace(&mut self.phase, Phase::Closing) else {
            return;
        };
        ctx.pool.timed_out(dispatch.shard, self.key);
        self.wait_deadline = None;
        let wait = ctx.shared.config.pool.wait_timeout_ms;
        let message = self.exhausted_message(
            ctx,
            dispatch.shard,
            &format!("for {wait} ms (pool.wait_timeout_ms)"),
        );
        log::warn!("session {}: {message}", self.key);
        let mut bytes = Vec::new();
        packet::write_err(&mut bytes, 1, ErrorCode::ER_CON_COUNT_ERROR, &message);
        self.abandon(&dispatch, &bytes);
    }

    fn exhausted_message(&self, ctx: &Ctx<'_>, shard: usize, how: &str) -> String {
        format!(
            "dbrouter: the connection pool of {} is exhausted: all {} connections (pool.max_per_shard) \
             are in use {how}; the statement did not run and the connection lives on: retry, \
             or raise pool.max_per_shard",
            ctx.shared.shard_addr(shard),
            ctx.shared.config.pool.max_per_shard
        )
    }

    /// Between commands, outside a transaction and not pinned: every
    /// backend connection goes back to the pool.
    pub(super) fn release_backends(&mut self, ctx: &mut Ctx<'_>) {
        if self.back.is_none() && self.parked.iter().all(Option::is_none) {
            return;
        }
        if !matches!(self.phase, Phase::Idle)
            || self.in_ready > 0
            || matches!(self.transaction, Transaction::Open(_))
        {
            return;
        }
        // What the proxy queued for the backend (the close of a statement
        // pushed out of its cache) goes first: the connection is lent again
        // once the server has it, not retired for holding it. Its write
        // may be waiting for the end of the event batch.
        if self.back.as_ref().is_some_and(|b| !b.out.is_empty()) {
            return;
        }
        // Cursors and long data may have changed without a reply.
        record_pins(ctx, self.key, self.pins.settle());
        if self.pins.pinned() {
            return;
        }
        let Some(key) = self.pool_key.as_ref() else {
            return;
        };
        if let Some(mut back) = self.back.take() {
            self.stmts.forget_shard(self.active);
            back.state = self.replay.clone();
            ctx.pool
                .give_back(self.active, key, back, ctx.now, ctx.registry);
        }
        for shard in 0..self.parked.len() {
            if let Some(mut back) = self.parked[shard].take() {
                self.stmts.forget_shard(shard);
                back.state = self.replay.clone();
                ctx.pool.give_back(shard, key, back, ctx.now, ctx.registry);
            }
        }
    }

    /// A statement prepared on the active backend: remembered in its cache
    /// (transaction mode), closing the least recently used one if full.
    pub(super) fn cache_statement(&mut self, ctx: &Ctx<'_>, client_id: u32, backend_id: u32) {
        if ctx.pool.enabled {
            let capacity = ctx.shared.config.pool.statement_cache;
            let (back, stmts) = (self.back.as_mut(), &mut self.stmts);
            cache_statement(back, stmts, self.active, capacity, client_id, backend_id);
        }
    }
}

/// Reports a change of session `key`'s pins to the metrics (and the log).
/// Apart from `Session` so a caller holding the phase borrowed can use it.
pub(super) fn record_pins(ctx: &Ctx<'_>, key: usize, change: PinChange) {
    if change.is_empty() {
        return;
    }
    ctx.stats.record_pins(change);
    for reason in change.started_reasons() {
        log::debug!("session {key}: pinned ({})", reason.name());
    }
}

/// See `Session::cache_statement`; apart so a caller holding the phase
/// borrowed can use it.
pub(super) fn cache_statement(
    back: Option<&mut Backend>,
    stmts: &mut Statements,
    shard: usize,
    capacity: usize,
    client_id: u32,
    backend_id: u32,
) {
    let (Some(back), Some(stmt)) = (back, stmts.get(client_id)) else {
        return;
    };
    if let Some(evicted) = back
        .cache
        .insert(stmt.hash, stmt.sql.clone(), backend_id, capacity)
    {
        let mut close = [com::COM_STMT_CLOSE, 0, 0, 0, 0];
        set_statement_id(&mut close, evicted);
        let _ = back.send(0, &close);
        stmts.forget_backend_id(shard, evicted);
    }
}
