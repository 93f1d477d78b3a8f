//! Commands: routing each one to a shard (`route::router`), readying that
//! shard's backend (open it, replay session statements, send the deferred
//! BEGIN, prepare the statement there), and forwarding the client's bytes.
//! Prepared statements are mapped between the client's ids and each
//! backend's here.

use super::*;

/// A client command waiting for its shard's backend to be ready. The
/// command's bytes stay in `front_in` (at `in_ready`) meanwhile.
pub(super) struct Dispatch {
    pub(super) shard: usize,
    /// The packet's length on the wire.
    pub(super) total: usize,
    pub(super) expect: Option<Expect>,
    /// Session statements in the command (COM_QUERY payloads of its SET and
    /// USE parts, or the COM_INIT_DB / COM_SET_OPTION payload): replayed on
    /// the session's other backends once this one accepted them.
    pub(super) record: Vec<Vec<u8>>,
    /// A routed statement: the deferred BEGIN must run first.
    pub(super) opens_transaction: bool,
    /// A COM_STMT_* command on this statement (client id): it must be
    /// prepared on the shard first, and its id is rewritten to the backend's.
    pub(super) stmt: Option<u32>,
    /// For COM_STMT_EXECUTE: whether the packet carries parameter types.
    pub(super) execute_types: Option<bool>,
    /// For COM_STMT_PREPARE: the client id the reply's id is rewritten to.
    pub(super) prepare: Option<u32>,
    /// The packet is too large to hold: it is forwarded as it arrives
    /// (`total` is then 0), and a failure closes the session, since the rest
    /// of the packet cannot be skipped.
    pub(super) streamed: bool,
    /// A COM_QUERY that may read ROW_COUNT() or FOUND_ROWS(): rewritten
    /// if its connection does not hold the client's (`counters.rs`).
    pub(super) reads_counters: bool,
}

/// What a prelude command (one the proxy sends before the client's) is.
pub(super) enum Prelude {
    /// A replayed session statement or the deferred BEGIN: one OK or ERR.
    Simple,
    /// The statement of a COM_STMT_* command, prepared on a new shard.
    Prepare {
        tracker: ReplyTracker,
        id: Option<u32>,
    },
}

/// Follows `SET ... sql_mode = '...'` so later statements are lexed as the
/// server lexes them (NO_BACKSLASH_ESCAPES, ANSI_QUOTES and the combination
/// modes that include ANSI_QUOTES). A value that is not a plain literal
/// cannot be followed: `None`, and statements are then routed only when
/// every reading agrees (see `route_uncertain`).
pub(super) fn follow_sql_mode(
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
pub(super) fn route_uncertain(
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

/// A replayed session statement that changes the current database:
/// COM_INIT_DB, or a COM_QUERY `USE db`.
pub(super) fn is_database_change(entry: &[u8]) -> bool {
    match entry.split_first() {
        Some((&com::COM_INIT_DB, _)) => true,
        Some((&com::COM_QUERY, sql)) => {
            let sql = sql.trim_ascii_start();
            sql.len() > 3
                && sql[..3].eq_ignore_ascii_case(b"use")
                && (sql[3].is_ascii_whitespace() || sql[3] == b'`')
        }
        _ => false,
    }
}

pub(super) fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// A COM_STMT_EXECUTE payload sent without parameter types, rebuilt with
/// `types` (and the backend's statement id), for a server that has not seen
/// them. `None` if the payload is not what its statement implies.
pub(super) fn with_types(
    payload: &[u8],
    num_params: u16,
    types: &[u8],
    backend_id: u32,
) -> Option<Vec<u8>> {
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
pub(super) enum StatementCommand {
    Prepare,
    Execute(u32),
    Fetch(u32),
    Reset(u32),
    LongData(u32),
    Close(u32),
}

impl StatementCommand {
    pub(super) fn of(command: &Command<'_>) -> Option<StatementCommand> {
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

impl Session {
    /// Readies the command's backend (open it, replay the session's
    /// statements, send the deferred BEGIN), then forwards the command.
    /// Called again after each of those steps completes.
    pub(super) fn continue_dispatch(&mut self, ctx: &mut Ctx<'_>, mut dispatch: Dispatch) {
        self.switch_to(dispatch.shard);
        if self.back.is_none() && ctx.pool.enabled {
            self.borrow_backend(ctx, dispatch);
            return;
        }
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
        // A pooled connection lent with another client's state is reset
        // (and put back in the login database) before the replay.
        let mut reset = Vec::new();
        if back.reset_pending {
            reset.push(com::COM_RESET_CONNECTION);
        } else if back.init_db_pending {
            reset.push(com::COM_INIT_DB);
            reset.extend_from_slice(self.client.database.as_deref().unwrap_or_default());
        }
        let prelude = if !reset.is_empty() {
            Some(reset.as_slice())
        } else if back.applied < self.replay.len() {
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
        // Metadata caching: whether an execute's result may not reach the
        // client without its column definitions.
        let mut metadata_may_differ = false;
        if let Some(id) = dispatch.stmt {
            let epoch = self.stmts.epoch(dispatch.shard);
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
            if stmt.backend_id(dispatch.shard, epoch).is_none() {
                // Transaction mode: this connection may have it already.
                if let Some(id) = back.cache.get(stmt.hash, &stmt.sql) {
                    stmt.place(dispatch.shard, id, epoch);
                }
            }
            let Some(backend_id) = stmt.backend_id(dispatch.shard, epoch) else {
                // First use on this shard: prepare it there, then come back.
                let mut payload = Vec::with_capacity(stmt.sql.len() + 1);
                payload.push(com::COM_STMT_PREPARE);
                payload.extend_from_slice(&stmt.sql);
                if let Err(e) = back.send_command(&payload) {
                    self.backend_failed(ctx, e, 1);
                    return;
                }
                let tracker = self.client.tracker(Expect::Prepare, false);
                let at = ctx.now + ctx.shared.config.connect_timeout();
                self.arm_deadline(ctx, at);
                self.phase = Phase::Prelude(dispatch, Prelude::Prepare { tracker, id: None });
                return;
            };
            let packet = self.in_ready..self.in_ready + dispatch.total;
            metadata_may_differ = stmt.client_metadata_may_differ(dispatch.shard, epoch);
            if let Some(types_sent) = dispatch.execute_types {
                stmt.last_shard = Some(dispatch.shard);
                let needs_types =
                    !types_sent && stmt.num_params > 0 && !stmt.types_on(dispatch.shard, epoch);
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
                        stmt.types_sent_to(dispatch.shard, epoch);
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
                        reply: Some(self.client.tracker(Expect::Execute, metadata_may_differ)),
                        request: None,
                        record: Vec::new(),
                        prepared: None,
                        statement: Some(id),
                    };
                    return;
                }
                if types_sent {
                    stmt.types_sent_to(dispatch.shard, epoch);
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
                    .map(|e| self.client.tracker(e, metadata_may_differ)),
                request: Some(PacketRelay::new(0, max)),
                record,
                prepared: dispatch.prepare,
                statement: dispatch.stmt.or(dispatch.prepare),
            };
            return;
        }
        if dispatch.reads_counters && self.send_with_counters(&dispatch) {
            self.phase = Phase::Relay {
                reply: Some(self.client.tracker(Expect::Query, false)),
                request: None,
                record,
                prepared: None,
                statement: None,
            };
            return;
        }
        self.in_ready += dispatch.total;
        self.phase = match dispatch.expect {
            Some(expect) => Phase::Relay {
                reply: Some(self.client.tracker(expect, metadata_may_differ)),
                request: None,
                record,
                prepared: dispatch.prepare,
                statement: dispatch.stmt.or(dispatch.prepare),
            },
            None => Phase::Idle,
        };
    }

    /// Sends the COM_QUERY at the front of the input with the client's
    /// ROW_COUNT() and FOUND_ROWS() in place of its reads, when its
    /// connection does not hold them (`counters.rs`). False: nothing was
    /// sent, the packet goes as it is.
    fn send_with_counters(&mut self, dispatch: &Dispatch) -> bool {
        let Some(back) = self.back.as_mut() else {
            return false;
        };
        if self.counters.held_by(back.marker) {
            return false;
        }
        let packet = &self.front_in.data()[self.in_ready..self.in_ready + dispatch.total];
        let sql = &packet[HEADER_LEN + 1..];
        let rewritten = match self.scan {
            Some(opts) => self.counters.substitute(sql, !opts.no_backslash_escapes),
            // The session's sql_mode is not known: only a text both
            // readings of its strings agree on is changed.
            None => {
                let escaped = self.counters.substitute(sql, true);
                let plain = self.counters.substitute(sql, false);
                (escaped == plain).then_some(escaped).flatten()
            }
        };
        let Some(sql) = rewritten else {
            return false;
        };
        let mut payload = Vec::with_capacity(sql.len() + 1);
        payload.push(com::COM_QUERY);
        payload.extend_from_slice(&sql);
        if payload.len() >= MAX_FRAME_PAYLOAD || back.send(0, &payload).is_err() {
            return false;
        }
        self.front_in.consume(dispatch.total);
        true
    }

    /// A command that will not run: the client gets `err` (a framed ERR).
    /// A whole packet is dropped and the session goes on; a streamed one
    /// cannot be skipped, so the session closes.
    pub(super) fn abandon(&mut self, dispatch: &Dispatch, err: &[u8]) {
        self.push_ready(err);
        if dispatch.streamed {
            self.phase = Phase::Closing;
        } else {
            self.front_in.consume(dispatch.total);
            self.phase = Phase::Idle;
        }
    }

    pub(super) fn on_command(&mut self, ctx: &mut Ctx<'_>) -> bool {
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
            ctx.stats.commands.fetch_add(1, Ordering::Relaxed);
            return self.start_streamed_command(ctx, avail[HEADER_LEN]);
        }
        // A whole command, handled now: counted once.
        ctx.stats.commands.fetch_add(1, Ordering::Relaxed);
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
                // Tell every server the session used goodbye, so none counts
                // an aborted connection, then close. It follows what the
                // proxy queued for that server (statement closes), in order;
                // a few bytes into an idle socket: the write does not block.
                let backs = self.back.iter_mut().chain(self.parked.iter_mut().flatten());
                for back in backs {
                    if back.send(0, &[com::COM_QUIT]).is_ok() {
                        let _ = back.flush_out();
                    }
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
        self.effects = Effects::default();
        let reads_counters = matches!(&command, Command::Query(sql) if counters::may_read(sql));
        let (shard, record, opens_transaction) = match command {
            Command::Query(sql) => {
                if ctx.pool.enabled {
                    self.effects = pins::effects(sql);
                }
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
                            self.counters.answered_ok();
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
                            self.counters.answered_ok();
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
                self.forget_session_state(ctx, true);
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
            reads_counters,
        };
        self.continue_dispatch(ctx, dispatch);
        true
    }

    /// COM_STMT_PREPARE / EXECUTE / FETCH / RESET / SEND_LONG_DATA / CLOSE:
    /// client ids mapped to the backends', each execution routed.
    pub(super) fn on_statement_command(
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
            reads_counters: false,
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
                    stmt.forget_types();
                }
                // A cursor keeps the statement's connection until it is
                // reset or closed; long data is used up by this execute.
                let cursor = self
                    .front_in
                    .data()
                    .get(HEADER_LEN + 5)
                    .is_some_and(|f| *f != 0);
                self.pins.cursors.retain(|c| *c != id);
                if cursor {
                    self.pins.cursors.push(id);
                }
                self.pins.long_data.retain(|c| *c != id);
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
                if let StatementCommand::Reset(_) = command {
                    self.pins.cursors.retain(|c| *c != id);
                    self.pins.long_data.retain(|c| *c != id);
                }
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
                if !self.pins.long_data.contains(&id) {
                    self.pins.long_data.push(id);
                }
                dispatch.stmt = Some(id);
            }
            StatementCommand::Close(id) => {
                // No reply. Closed on every backend that has it; a parked
                // backend sends it before its next command.
                self.pins.cursors.retain(|c| *c != id);
                self.pins.long_data.retain(|c| *c != id);
                let removed = self.stmts.remove(id);
                // In transaction mode the backend statements belong to their
                // connections' caches, shared by every client with the same
                // text: they stay (bounded by pool.statement_cache).
                if let Some(stmt) = removed.filter(|_| !ctx.pool.enabled) {
                    for (shard, backend_id) in stmt.placements() {
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
    pub(super) fn statement_route(
        &self,
        ctx: &Ctx<'_>,
        sql: &[u8],
    ) -> Result<StmtRoute, RouteError> {
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
    pub(super) fn transaction_shard(&self) -> Option<usize> {
        match self.transaction {
            Transaction::Open(shard) => Some(shard),
            _ => None,
        }
    }

    /// A statement the router refused: ERR, and the session lives on (a
    /// transaction stays usable).
    pub(super) fn refuse_statement(&mut self, total: usize, error: &RouteError) -> bool {
        let message = error.to_string();
        self.answer_locally(total, ErrorCode::ER_UNKNOWN_ERROR, &message)
    }

    /// COM_RESET_CONNECTION: the session starts over. The other shards'
    /// connections hold the old state, so they are closed (reopened fresh
    /// when needed); the active one is reset by the server.
    pub(super) fn forget_session_state(&mut self, ctx: &mut Ctx<'_>, keep_database: bool) {
        for (shard, slot) in self.parked.iter_mut().enumerate() {
            if let Some(mut back) = slot.take() {
                let _ = ctx.registry.deregister(&mut back.stream);
                ctx.pool.closed(shard);
            }
        }
        // The server keeps the current database through a reset (not
        // through a change of user): so does the replay list.
        let database = keep_database
            .then(|| {
                self.replay
                    .iter()
                    .rev()
                    .find(|e| is_database_change(e))
                    .cloned()
            })
            .flatten();
        self.replay = Arc::new(database.into_iter().collect());
        self.stmts.clear();
        pooled::record_pins(ctx, self.key, self.pins.clear());
        self.counters.reset();
        if let Some(back) = self.back.as_mut() {
            back.applied = self.replay.len();
            // The server dropped this connection's statements too.
            back.cache.clear();
        }
        self.transaction = Transaction::None;
        self.scan = Some(ctx.shared.scan);
    }

    /// A command packet too large to hold: forwarded as it arrives. Only
    /// commands that carry data can be that large.
    pub(super) fn start_streamed_command(&mut self, ctx: &mut Ctx<'_>, command: u8) -> bool {
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
            reads_counters: false,
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
}
