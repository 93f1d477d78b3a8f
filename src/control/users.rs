//! Who may log in: an immutable snapshot of the configured users and of the
//! backend's own accounts, read lock-free by every reactor.
//!
//! A reactor holds a `Arc<ArcSwap<UserDirectory>>`, `load()`s it when a
//! client's handshake response arrives and calls
//! [`UserDirectory::authenticate`]. The answer says how to log in to the
//! backends for this client ([`BackendLogin`]), or why not:
//!
//! - [`AuthOutcome::WrongPassword`]: the user is known and the response does
//!   not verify. Refuse.
//! - [`AuthOutcome::UnknownUser`]: no configured user of that name and no
//!   backend account row for it that matches the client's address. The account
//!   may have been created a moment ago: ask the accounts thread for a re-read
//!   and wait for a snapshot with a higher [`UserDirectory::generation`]
//!   before refusing.
//!
//! The proxy never holds a plaintext password of a client (only the server's
//! `*` hash, SHA1(SHA1(password))). Checking the client's scramble response
//! yields SHA1(password), which is all mysql_native_password needs to log in
//! to a backend as the same user, so that is the default [`BackendLogin`].

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use log::{debug, warn};

use crate::config::Config;
use crate::control::host::HostPattern;
use crate::protocol::auth::{Credential, PasswordHash};

/// The users that may log in, as one immutable value.
///
/// Building one costs allocations; checking a login costs a hash map look-up
/// and a SHA1 or two. [`UserDirectory::with_backend_accounts`] and
/// [`UserDirectory::bumped`] share the parts they do not change.
pub struct UserDirectory {
    generation: u64,
    /// When the read of the backend's accounts that produced this snapshot
    /// started (`None` before the first attempt).
    read_started: Option<Instant>,
    config_users: Arc<HashMap<Vec<u8>, ConfigUser>>,
    /// Each user's rows, most specific host first.
    backend_accounts: Arc<HashMap<Vec<u8>, Vec<BackendRow>>>,
}

/// The answer to one login attempt.
#[derive(Debug)]
pub enum AuthOutcome {
    /// The response verifies: log in to the backends this way.
    Accepted(BackendLogin),
    /// The user is known and the response does not verify.
    WrongPassword,
    /// No configured user and no matching backend account: a re-read of the
    /// backend's accounts may know more.
    UnknownUser,
}

/// How to log in to the backends for this client.
#[derive(Clone)]
pub struct BackendLogin {
    pub user: Vec<u8>,
    pub credential: Credential,
}

impl fmt::Debug for BackendLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The user name as text; Credential's Debug never prints the hash.
        f.debug_struct("BackendLogin")
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("credential", &self.credential)
            .finish()
    }
}

/// One row of the backend's `mysql.user` that uses mysql_native_password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendAccount {
    pub user: String,
    pub host: String,
    pub hash: PasswordHash,
}

struct ConfigUser {
    hash: PasswordHash,
    /// `backend_user`/`backend_password` of the config, ready to use.
    mapped: Option<BackendLogin>,
}

struct BackendRow {
    host: HostPattern,
    hash: PasswordHash,
}

impl UserDirectory {
    /// From the config's `[[user]]` entries only (generation 0).
    ///
    /// Config validation has checked every hash already; an entry that fails
    /// to parse anyway is left out (nobody can log in as it) with a warning,
    /// and of two entries with one name the first wins.
    pub fn from_config(config: &Config) -> UserDirectory {
        let mut users = HashMap::with_capacity(config.users.len());
        for entry in &config.users {
            let Some(hash) = PasswordHash::parse(&entry.password_hash) else {
                warn!("user {:?}: invalid password_hash, left out", entry.name);
                continue;
            };
            if users.contains_key(entry.name.as_bytes()) {
                warn!(
                    "user {:?} is configured twice: the first entry is used",
                    entry.name
                );
                continue;
            }
            let mapped = match (&entry.backend_user, &entry.backend_password) {
                (Some(user), Some(password)) => Some(BackendLogin {
                    user: user.as_bytes().to_vec(),
                    credential: Credential::from_password(password),
                }),
                _ => None,
            };
            users.insert(entry.name.as_bytes().to_vec(), ConfigUser { hash, mapped });
        }
        UserDirectory {
            generation: 0,
            read_started: None,
            config_users: Arc::new(users),
            backend_accounts: Arc::new(HashMap::new()),
        }
    }

    /// A new snapshot = config users + the given backend accounts, generation
    /// + 1.
    ///
    /// Rows that can never be used are left out, with a debug log line:
    /// anonymous accounts (the proxy logs in to the backends as the client's
    /// user name, which the server would then match to a different row), and
    /// host patterns that only DNS could match (the proxy does not resolve
    /// names, see [`crate::control::host`]).
    pub fn with_backend_accounts(&self, accounts: Vec<BackendAccount>) -> UserDirectory {
        let mut by_user: HashMap<Vec<u8>, Vec<BackendRow>> = HashMap::new();
        for account in accounts {
            if account.user.is_empty() {
                debug!("skipping anonymous account ''@{:?}", account.host);
                continue;
            }
            let host = HostPattern::parse(&account.host);
            if !host.matches_without_dns() {
                debug!(
                    "skipping account {:?}@{:?}: its host needs DNS, which the proxy does not use",
                    account.user, account.host
                );
                continue;
            }
            by_user
                .entry(account.user.into_bytes())
                .or_default()
                .push(BackendRow {
                    host,
                    hash: account.hash,
                });
        }
        for rows in by_user.values_mut() {
            rows.sort_by(|a, b| HostPattern::most_specific_first(&a.host, &b.host));
        }
        UserDirectory {
            generation: self.generation + 1,
            read_started: self.read_started,
            config_users: Arc::clone(&self.config_users),
            backend_accounts: Arc::new(by_user),
        }
    }

    /// Same content, generation + 1 (published after a failed or unchanged
    /// re-read so that waiting sessions resolve).
    pub fn bumped(&self) -> UserDirectory {
        UserDirectory {
            generation: self.generation + 1,
            read_started: self.read_started,
            config_users: Arc::clone(&self.config_users),
            backend_accounts: Arc::clone(&self.backend_accounts),
        }
    }

    /// Grows by one with every snapshot the accounts thread publishes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// When the read attempt that produced this snapshot started; `None` for a
    /// snapshot no read has touched yet.
    ///
    /// A session that sent a refresh request at instant `t` is answered by the
    /// first snapshot with `read_started() >= Some(t)`. Waiting only for a
    /// higher generation can be answered by a read that was already running
    /// when the request was sent, and so may miss an account created just
    /// before the client connected.
    pub fn read_started(&self) -> Option<Instant> {
        self.read_started
    }

    /// The same snapshot, marked as the result of a read started at `at`.
    pub(crate) fn read_at(mut self, at: Instant) -> UserDirectory {
        self.read_started = Some(at);
        self
    }

    /// Checks a mysql_native_password scramble response of `user` connecting
    /// from `client_ip`.
    ///
    /// A configured user of that name decides alone, whatever the backend's
    /// accounts say: the operator wrote it down on purpose, it may be mapped
    /// to a backend account of another name, and an account created on a
    /// backend later must neither take it over nor lock it out.
    ///
    /// Otherwise the backend's rows for `user` are tried as the server does:
    /// the most specific row whose host matches the client decides, and its
    /// hash alone is checked (trying the less specific rows too would accept
    /// passwords the server refuses from this address).
    pub fn authenticate(
        &self,
        user: &[u8],
        client_ip: IpAddr,
        scramble: &[u8; 20],
        response: &[u8],
    ) -> AuthOutcome {
        if let Some(configured) = self.config_users.get(user) {
            return match configured.hash.verify(scramble, response) {
                None => AuthOutcome::WrongPassword,
                Some(stage1) => AuthOutcome::Accepted(match &configured.mapped {
                    Some(login) => login.clone(),
                    None => BackendLogin {
                        user: user.to_vec(),
                        credential: stage1,
                    },
                }),
            };
        }
        let Some(row) = self
            .backend_accounts
            .get(user)
            .and_then(|rows| rows.iter().find(|row| row.host.matches(client_ip)))
        else {
            return AuthOutcome::UnknownUser;
        };
        match row.hash.verify(scramble, response) {
            None => AuthOutcome::WrongPassword,
            Some(stage1) => AuthOutcome::Accepted(BackendLogin {
                user: user.to_vec(),
                credential: stage1,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client sends for `password` (nothing for no password).
    fn client_response(scramble: &[u8; 20], password: &str) -> Vec<u8> {
        Credential::from_password(password)
            .scramble_response(scramble)
            .to_vec()
    }

    fn server_hash(password: &str) -> String {
        match PasswordHash::from_password(password) {
            PasswordHash::Empty => String::new(),
            PasswordHash::Native(stage2) => {
                let hex: String = stage2.iter().map(|b| format!("{b:02X}")).collect();
                format!("*{hex}")
            }
        }
    }

    const SCRAMBLE: [u8; 20] = *b"0123456789abcdefghij";

    fn config(users: &str) -> Config {
        let text = format!(
            "[proxy]\nlisten = \"127.0.0.1:3307\"\n{users}\n[[shard]]\nid = 0\nmaster = \"127.0.0.1:3306\"\n"
        );
        Config::from_toml(&text).unwrap()
    }

    fn account(user: &str, host: &str, password: &str) -> BackendAccount {
        BackendAccount {
            user: user.into(),
            host: host.into(),
            hash: PasswordHash::from_password(password),
        }
    }

    fn try_login(dir: &UserDirectory, user: &str, from: &str, password: &str) -> AuthOutcome {
        dir.authenticate(
            user.as_bytes(),
            from.parse().unwrap(),
            &SCRAMBLE,
            &client_response(&SCRAMBLE, password),
        )
    }

    fn accepted(outcome: AuthOutcome) -> BackendLogin {
        match outcome {
            AuthOutcome::Accepted(login) => login,
            other => panic!("expected Accepted, got {other:?}"),
        }
    }

    fn config_users() -> Config {
        config(&format!(
            "[[user]]\nname = \"app\"\npassword_hash = \"{}\"\n\
             [[user]]\nname = \"mapped\"\npassword_hash = \"{}\"\n\
             backend_user = \"svc\"\nbackend_password = \"svc-secret\"\n\
             [[user]]\nname = \"nopw\"\npassword_hash = \"\"\n",
            server_hash("app-secret"),
            server_hash("mapped-secret"),
        ))
    }

    #[test]
    fn config_user_logs_in_to_the_backend_as_itself_with_stage1() {
        let dir = UserDirectory::from_config(&config_users());
        let login = accepted(try_login(&dir, "app", "10.0.0.1", "app-secret"));
        assert_eq!(login.user, b"app");
        // The backend credential is SHA1(password).
        assert_eq!(login.credential, Credential::from_password("app-secret"));
    }

    #[test]
    fn mapped_config_user_logs_in_as_its_backend_account() {
        let dir = UserDirectory::from_config(&config_users());
        let login = accepted(try_login(&dir, "mapped", "10.0.0.1", "mapped-secret"));
        assert_eq!(login.user, b"svc");
        assert_eq!(login.credential, Credential::from_password("svc-secret"));
        // Its own password is checked, not the backend account's.
        assert!(matches!(
            try_login(&dir, "mapped", "10.0.0.1", "svc-secret"),
            AuthOutcome::WrongPassword
        ));
    }

    #[test]
    fn config_user_without_password() {
        let dir = UserDirectory::from_config(&config_users());
        let login = accepted(try_login(&dir, "nopw", "10.0.0.1", ""));
        assert_eq!(login.credential, Credential::Empty);
        assert!(matches!(
            try_login(&dir, "nopw", "10.0.0.1", "anything"),
            AuthOutcome::WrongPassword
        ));
    }

    #[test]
    fn wrong_password_and_unknown_user_are_told_apart() {
        let dir = UserDirectory::from_config(&config_users()).with_backend_accounts(vec![account(
            "dev",
            "%",
            "dev-secret",
        )]);
        assert!(matches!(
            try_login(&dir, "app", "10.0.0.1", "nope"),
            AuthOutcome::WrongPassword
        ));
        assert!(matches!(
            try_login(&dir, "dev", "10.0.0.1", "nope"),
            AuthOutcome::WrongPassword
        ));
        assert!(matches!(
            try_login(&dir, "ghost", "10.0.0.1", "x"),
            AuthOutcome::UnknownUser
        ));
        // User names are compared exactly, as the server does.
        assert!(matches!(
            try_login(&dir, "APP", "10.0.0.1", "app-secret"),
            AuthOutcome::UnknownUser
        ));
        // An empty response for a user with a password is a wrong password.
        assert!(matches!(
            try_login(&dir, "dev", "10.0.0.1", ""),
            AuthOutcome::WrongPassword
        ));
    }

    #[test]
    fn backend_account_logs_in_as_itself() {
        let dir = UserDirectory::from_config(&config_users()).with_backend_accounts(vec![account(
            "dev",
            "%",
            "dev-secret",
        )]);
        let login = accepted(try_login(&dir, "dev", "10.0.0.1", "dev-secret"));
        assert_eq!(login.user, b"dev");
        assert_eq!(login.credential, Credential::from_password("dev-secret"));
    }

    #[test]
    fn config_users_win_over_backend_accounts() {
        let dir = UserDirectory::from_config(&config_users()).with_backend_accounts(vec![
            account("app", "%", "backend-secret"),
            account("mapped", "%", "backend-secret"),
        ]);
        accepted(try_login(&dir, "app", "10.0.0.1", "app-secret"));
        assert!(matches!(
            try_login(&dir, "app", "10.0.0.1", "backend-secret"),
            AuthOutcome::WrongPassword
        ));
        let mapped = accepted(try_login(&dir, "mapped", "10.0.0.1", "mapped-secret"));
        assert_eq!(mapped.user, b"svc");
    }

    #[test]
    fn no_row_for_the_clients_host_is_an_unknown_user() {
        let dir = UserDirectory::from_config(&config_users()).with_backend_accounts(vec![account(
            "dev",
            "10.1.%",
            "dev-secret",
        )]);
        accepted(try_login(&dir, "dev", "10.1.2.3", "dev-secret"));
        assert!(matches!(
            try_login(&dir, "dev", "10.2.0.1", "dev-secret"),
            AuthOutcome::UnknownUser
        ));
    }

    #[test]
    fn most_specific_matching_row_alone_decides() {
        let dir = UserDirectory::from_config(&config_users()).with_backend_accounts(vec![
            account("dev", "%", "anywhere"),
            account("dev", "10.1.2.3", "exact"),
            account("dev", "10.1.%", "subnet"),
            account("dev", "localhost", "local"),
        ]);
        let cases: &[(&str, &str, bool)] = &[
            ("10.1.2.3", "exact", true),
            ("10.1.2.3", "subnet", false),
            ("10.1.2.3", "anywhere", false),
            ("10.1.9.9", "subnet", true),
            ("10.1.9.9", "anywhere", false),
            ("10.9.9.9", "anywhere", true),
            ("127.0.0.1", "local", true),
            ("127.0.0.1", "anywhere", false),
            ("::1", "local", true),
        ];
        for (from, password, ok) in cases {
            let outcome = try_login(&dir, "dev", from, password);
            assert_eq!(
                matches!(outcome, AuthOutcome::Accepted(_)),
                *ok,
                "dev@{from} with {password:?}: {outcome:?}"
            );
        }
    }

    #[test]
    fn rows_that_can_never_be_used_are_skipped() {
        let dir = UserDirectory::from_config(&config_users()).with_backend_accounts(vec![
            account("", "%", ""),
            account("dev", "app1.example.com", "dns"),
            account("dev", "%", "anywhere"),
        ]);
        // The anonymous account does not let an unknown name in.
        assert!(matches!(
            try_login(&dir, "ghost", "10.0.0.1", ""),
            AuthOutcome::UnknownUser
        ));
        // The DNS row is not there, so the `%` row decides.
        accepted(try_login(&dir, "dev", "10.0.0.1", "anywhere"));
    }

    #[test]
    fn generations_grow_with_every_snapshot() {
        let first = UserDirectory::from_config(&config_users());
        assert_eq!(first.generation(), 0);
        assert_eq!(first.read_started(), None);
        let second = first.with_backend_accounts(vec![account("dev", "%", "dev-secret")]);
        assert_eq!(second.generation(), 1);
        let at = Instant::now();
        let third = second.bumped().read_at(at);
        assert_eq!(third.generation(), 2);
        assert_eq!(third.read_started(), Some(at));
        // Bumping keeps the content, replacing the accounts drops the old ones.
        accepted(try_login(&third, "dev", "10.0.0.1", "dev-secret"));
        accepted(try_login(&third, "app", "10.0.0.1", "app-secret"));
        let fourth = third.with_backend_accounts(Vec::new());
        assert_eq!(fourth.generation(), 3);
        assert_eq!(fourth.read_started(), Some(at));
        assert!(matches!(
            try_login(&fourth, "dev", "10.0.0.1", "dev-secret"),
            AuthOutcome::UnknownUser
        ));
        accepted(try_login(&fourth, "app", "10.0.0.1", "app-secret"));
    }
}
