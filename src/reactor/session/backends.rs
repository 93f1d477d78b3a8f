//! The session's backend side: moving bytes to and from the active backend,
//! its login and the replies the proxy reads itself, the reply tracker that
//! clears reply bytes for the client, switching and opening shards' backends,
//! and what the client is told when a backend fails.

use super::*;

impl Session {
    pub(super) fn pump_backend(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let holds_sends = self.holds_sends(ctx);
        let Some(back) = self.back.as_mut() else {
            return false;
        };
        let mut progress = false;
        // Bytes to write wait for the end of the event batch.
        let hold = holds_sends && back.writable && (!back.out.is_empty() || self.in_ready > 0);
        if hold {
            self.sends_held = true;
        }
        if back.writable && !hold {
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
    pub(super) fn step_backend_login(&mut self, ctx: &mut Ctx<'_>) {
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
                    client_mariadb_caps: self.client.mariadb_caps,
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
                        let epoch = self.stmts.epoch(dispatch.shard);
                        if let Some(stmt) = dispatch.stmt.and_then(|s| self.stmts.get_mut(s)) {
                            stmt.place(dispatch.shard, backend_id, epoch);
                            if let Some(metadata) = tracker.metadata() {
                                stmt.metadata_sent(dispatch.shard, epoch, metadata);
                            }
                        }
                        if let Some(id) = dispatch.stmt {
                            self.cache_statement(ctx, id, backend_id);
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
                        if back.reset_pending {
                            // The server dropped the statements too.
                            back.reset_pending = false;
                            back.cache.clear();
                            self.stmts.forget_shard(dispatch.shard);
                        } else if back.init_db_pending {
                            back.init_db_pending = false;
                        } else if back.applied < self.replay.len() {
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
                    client_mariadb_caps: self.client.mariadb_caps,
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
                        self.forget_session_state(ctx, false);
                        self.set_pool_key();
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
    pub(super) fn scan_reply(&mut self, ctx: &mut Ctx<'_>) {
        let Phase::Relay {
            reply: Some(tracker),
            request,
            record,
            prepared,
            statement,
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
            let mut cached = None;
            let epoch = self.stmts.epoch(self.active);
            match self.stmts.get_mut(client_id) {
                Some(stmt) if payload[0] == 0x00 => {
                    let backend_id =
                        u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
                    stmt.num_params = u16::from_le_bytes([payload[7], payload[8]]);
                    stmt.place(self.active, backend_id, epoch);
                    set_statement_id(payload, client_id);
                    cached = Some(backend_id);
                }
                _ => {
                    self.stmts.remove(client_id);
                }
            }
            *prepared = None;
            if let (Some(backend_id), true) = (cached, ctx.pool.enabled) {
                let capacity = ctx.shared.config.pool.statement_cache;
                pooled::cache_statement(
                    self.back.as_mut(),
                    &mut self.stmts,
                    self.active,
                    capacity,
                    client_id,
                    backend_id,
                );
            }
        }
        let unscanned = &self.front_out.data()[self.out_ready..];
        let scan = match tracker.scan(unscanned) {
            Ok(scan) => scan,
            Err(e) => {
                let seq = tracker.err_seq();
                let failure = BackendFailure::Protocol(e.to_string());
                self.backend_failed(ctx, failure, seq);
                return;
            }
        };
        let discarded = tracker.discarded();
        if discarded.is_some() {
            self.front_out.remove(self.out_ready, scan.forwardable);
        } else {
            self.out_ready += scan.forwardable;
        }
        match scan.state {
            ReplyState::InProgress => {}
            ReplyState::Done { status } => {
                self.last_status = status;
                if let (Some(metadata), Some(id)) = (tracker.metadata(), *statement) {
                    let epoch = self.stmts.epoch(self.active);
                    if let Some(stmt) = self.stmts.get_mut(id) {
                        stmt.metadata_received(self.active, epoch, metadata);
                    }
                }
                // The server's status says where the transaction is: this
                // covers BEGIN sent along, autocommit=0 and implicit commits.
                if status & status::SERVER_STATUS_IN_TRANS != 0 {
                    self.transaction = Transaction::Open(self.active);
                } else if let Transaction::Open(_) = self.transaction {
                    self.transaction = Transaction::None;
                }
                // An error may have stopped a multi-statement before its SET
                // parts ran: only a clean reply is known to have run them.
                let ok = !tracker.ended_with_error();
                if tracker.counts_statements() {
                    if let Some(back) = self.back.as_ref() {
                        let (rows, found) = (tracker.row_count(), tracker.found_rows());
                        self.counters.after_reply(rows, found, back.marker);
                    }
                }
                if !record.is_empty() && ok {
                    Arc::make_mut(&mut self.replay).append(record);
                    if let Some(back) = self.back.as_mut() {
                        back.applied = self.replay.len();
                    }
                }
                if ctx.pool.enabled {
                    let effects = std::mem::take(&mut self.effects);
                    let outcome = pins::Outcome {
                        ok,
                        generated_id: tracker.insert_id() != 0,
                        result_set: tracker.found_rows().is_some(),
                    };
                    let change = self.pins.apply(&effects, outcome);
                    pooled::record_pins(ctx, self.key, change);
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
                    self.refuse_discarded(ctx, discarded);
                    let failure = BackendFailure::Protocol("bytes after the end of a reply".into());
                    self.fail_backend_in_phase(ctx, failure);
                } else {
                    self.phase = Phase::Idle;
                    self.refuse_discarded(ctx, discarded);
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

    /// An execute's result came without the column definitions and the
    /// client may hold others (metadata caching): it was dropped, and the
    /// client is told to prepare the statement again, which gives it the
    /// definitions of the shard it is prepared on.
    fn refuse_discarded(&mut self, ctx: &Ctx<'_>, discarded: Option<u8>) {
        let Some(seq) = discarded else {
            return;
        };
        let target = ctx.shared.shard_addr(self.active);
        let message = format!(
            "dbrouter: {target} sent this statement's result without column definitions, \
             and the client holds others (were its tables changed on some shards only?); \
             prepare the statement again"
        );
        log::info!("session {}: {message}", self.key);
        self.send_err(seq, ErrorCode::ER_NEED_REPREPARE, &message);
    }

    /// The backend failed; tell the client in whatever way the phase allows.
    pub(super) fn fail_backend_in_phase(&mut self, ctx: &mut Ctx<'_>, failure: BackendFailure) {
        match &self.phase {
            Phase::BackendLogin { reply_seq } | Phase::ChangeUserBackend { reply_seq, .. } => {
                let seq = *reply_seq;
                self.backend_failed(ctx, failure, seq)
            }
            Phase::Relay {
                reply: Some(tracker),
                ..
            } => {
                let seq = tracker.err_seq();
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
    pub(super) fn backend_failed(&mut self, ctx: &mut Ctx<'_>, failure: BackendFailure, seq: u8) {
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

    /// Starts connecting `self.back` to the master of shard `self.active`.
    pub(super) fn open_backend(
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
        let token = back_token(self.key, self.active);
        let count = ctx.stats.backend_opened(self.active);
        let opened = Backend::connect(target, count).and_then(|mut back| {
            ctx.registry
                .register(
                    &mut back.stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|e| BackendFailure::Connect(e.to_string()))?;
            back.token = Some(token);
            Ok(back)
        });
        match opened {
            Ok(back) => {
                self.back = Some(back);
                Ok(())
            }
            Err(e) => {
                // Its place in the pool was taken for it.
                ctx.pool.closed(self.active);
                Err(e)
            }
        }
    }

    /// Makes shard `shard`'s backend the active one (parking the current).
    pub(super) fn switch_to(&mut self, shard: usize) {
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

    /// An event came for a parked backend: between commands that can only
    /// mean it is going away. The client hears of it at its next command.
    pub(super) fn check_parked(&mut self, ctx: &mut Ctx<'_>) {
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
                        ctx.pool.closed(shard);
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

    /// Closes the backend connection; returns where it was connected.
    pub(super) fn drop_backend(&mut self, ctx: &mut Ctx<'_>) -> ShardAddr {
        self.stmts.forget_shard(self.active);
        match self.back.take() {
            Some(mut back) => {
                let _ = ctx.registry.deregister(&mut back.stream);
                ctx.pool.closed(self.active);
                back.target
            }
            None => ctx.shared.shard_addr(self.active),
        }
    }
}
