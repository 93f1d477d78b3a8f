//! Logging a client in: the handshake response, the auth switch for clients
//! that open with another plugin, the account check (parking the session
//! while the accounts are re-read), the first backend login, and
//! COM_CHANGE_USER, which the proxy re-authenticates itself.

use super::*;

/// What a COM_CHANGE_USER asks for, once its authentication is done.
pub(super) struct ChangeUserRequest {
    pub(super) database: Vec<u8>,
    pub(super) charset: u16,
    pub(super) attributes: Option<Vec<u8>>,
}

/// A COM_CHANGE_USER copied out of the client buffer (the buffer is
/// consumed before the authentication runs).
pub(super) struct ChangeUserCommand {
    pub(super) user: Vec<u8>,
    pub(super) response: Vec<u8>,
    pub(super) native: bool,
    pub(super) request: ChangeUserRequest,
}

impl ChangeUserRequest {
    pub(super) fn from_command(change: &ChangeUser<'_>, charset: u8) -> ChangeUserCommand {
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

pub(super) enum Purpose {
    Login,
    ChangeUser(ChangeUserRequest),
}

/// An authentication parked until the accounts have been re-read.
pub(super) struct PendingAuth {
    pub(super) user: Vec<u8>,
    pub(super) response: Vec<u8>,
    pub(super) reply_seq: u8,
    pub(super) purpose: Purpose,
    /// When the re-read was asked for: only a read that started later can
    /// know an account created just before the client connected.
    pub(super) requested_at: Instant,
}

impl Session {
    pub(super) fn on_handshake_response(&mut self, ctx: &mut Ctx<'_>) -> bool {
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
            mariadb_caps: response.mariadb_capabilities & ctx.shared.advertised_mariadb_caps,
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

    pub(super) fn on_auth_switch_response(&mut self, ctx: &mut Ctx<'_>) -> bool {
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

    pub(super) fn send_auth_switch(&mut self, seq: u8) {
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

    pub(super) fn authenticate(
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
    pub(super) fn start_backend_login(
        &mut self,
        ctx: &mut Ctx<'_>,
        login: BackendLogin,
        reply_seq: u8,
    ) {
        self.disarm_deadline(); // logged in: the handshake timeout ends here
        self.login = Some(login);
        let topology = ctx.shared.topology.load();
        let shards = topology.shards.shards().len();
        self.parked = (0..shards).map(|_| None).collect();
        self.active = topology.shards.default_shard().index;
        self.set_pool_key();
        if ctx.pool.enabled {
            // Transaction mode: a pooled connection logged in alike proves
            // what a login would (the account, the database); with none
            // free the client is let in on the proxy's own check, and the
            // server's verdict comes with its first statement.
            let waiter = Waiter {
                key: self.key,
                again: false,
            };
            let lent = match &self.pool_key {
                Some(key) => ctx.pool.lend(
                    self.active,
                    key,
                    &self.replay,
                    waiter,
                    ctx.now,
                    ctx.registry,
                ),
                None => Lend::Open,
            };
            match lent {
                Lend::Idle(back) => {
                    if self.adopt(ctx, back) {
                        self.send_ok(reply_seq, self.last_status);
                        self.phase = Phase::Idle;
                        return;
                    }
                    // Its state did not fit: log in on a new one.
                }
                Lend::Open => {}
                Lend::Wait | Lend::Exhausted => {
                    ctx.pool.forget_waiter(self.active, self.key);
                    self.send_ok(reply_seq, self.last_status);
                    self.phase = Phase::Idle;
                    return;
                }
            }
        }
        self.phase = Phase::BackendLogin { reply_seq };
        if let Err(e) = self.open_backend(ctx, &topology) {
            self.backend_failed(ctx, e, reply_seq);
        }
    }

    pub(super) fn on_change_user(
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

    pub(super) fn on_change_user_switch_response(&mut self, ctx: &mut Ctx<'_>) -> bool {
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

    pub(super) fn start_change_user(
        &mut self,
        ctx: &mut Ctx<'_>,
        user: Vec<u8>,
        login: BackendLogin,
        request: ChangeUserRequest,
        reply_seq: u8,
    ) {
        if self.back.is_none() && ctx.pool.enabled {
            // Transaction mode between transactions: no connection to
            // change; the next statement borrows one logged in as the new
            // user (the server's verdict on the account comes then).
            self.client.database = Some(request.database).filter(|d| !d.is_empty());
            if let Ok(charset) = u8::try_from(request.charset) {
                self.client.charset = charset;
            }
            self.client.user = user;
            self.login = Some(login);
            self.forget_session_state(ctx, false);
            self.transaction = Transaction::None;
            self.set_pool_key();
            self.last_status &= !status::SERVER_STATUS_IN_TRANS;
            self.send_ok(reply_seq, self.last_status);
            self.phase = Phase::Idle;
            return;
        }
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
}
