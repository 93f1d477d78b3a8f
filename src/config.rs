//! Configuration: the TOML file (or the one-shard command line) turned into a
//! validated [`Config`].
//!
//! Every default is a named constant or function here, so README's
//! configuration reference and the code cannot drift apart silently: the
//! reference quotes these names.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// MariaDB's own default `max_allowed_packet` is 16 MiB; the proxy's limit
/// must be at least the backends' so that it never refuses what they accept.
pub const DEFAULT_MAX_ALLOWED_PACKET: usize = 64 * 1024 * 1024;
/// A client that has not finished logging in within this time is closed (B8).
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Connecting and logging in to a backend must finish within this time.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 3_000;
/// On SIGTERM running statements get this long to finish.
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 10_000;
/// Bytes buffered per direction per session; bounds memory per session.
pub const DEFAULT_BUFFER_SIZE: usize = 64 * 1024;
/// How often the backends' accounts are re-read.
pub const DEFAULT_USERS_REFRESH_INTERVAL_MS: u64 = 30_000;
/// An unknown user triggers a re-read, but never more often than this.
pub const DEFAULT_USERS_MIN_REFRESH_INTERVAL_MS: u64 = 1_000;
/// Environment variables naming the admin account that reads the backends'
/// accounts in command-line mode.
pub const ADMIN_USER_ENV: &str = "DBROUTER_ADMIN_USER";
pub const ADMIN_PASSWORD_ENV: &str = "DBROUTER_ADMIN_PASSWORD";

/// How a client session is linked to backend connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// A client keeps one backend connection per shard for its whole session.
    #[default]
    Session,
}

/// The whole validated configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub proxy: ProxyConfig,
    #[serde(default, rename = "user")]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub backend_users: Option<BackendUsersConfig>,
    #[serde(rename = "shard")]
    pub shards: Vec<ShardConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address the proxy listens on (every reactor binds it with SO_REUSEPORT).
    pub listen: SocketAddr,
    /// Number of reactor threads; default: one per core.
    #[serde(default)]
    pub reactors: Option<usize>,
    /// Pin reactor N to core N (mod the number of cores).
    #[serde(default = "default_true")]
    pub pin_cores: bool,
    #[serde(default)]
    pub pool_mode: PoolMode,
    #[serde(default = "default_max_allowed_packet")]
    pub max_allowed_packet: usize,
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    #[serde(default = "default_buffer_size")]
    pub buffer_size: usize,
    /// Server version announced to clients; default: the backend's own,
    /// read from its greeting at start.
    #[serde(default)]
    pub server_version: Option<String>,
}

/// A user the proxy itself knows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// The server-format mysql_native_password hash: `*` and 40 hex digits
    /// (what `SELECT PASSWORD('...')` prints), or "" for no password.
    pub password_hash: String,
    /// Log in to the backends as this account instead of as `name`.
    #[serde(default)]
    pub backend_user: Option<String>,
    /// The backend account's password (needed in clear: native password
    /// login needs SHA1(password), which the `*` hash does not give).
    #[serde(default)]
    pub backend_password: Option<String>,
}

/// Accept the accounts the backends themselves know.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendUsersConfig {
    /// An account allowed to `SELECT` from `mysql.user` on the backends.
    pub admin_user: String,
    #[serde(default)]
    pub admin_password: String,
    #[serde(default = "default_users_refresh_interval_ms")]
    pub refresh_interval_ms: u64,
    #[serde(default = "default_users_min_refresh_interval_ms")]
    pub min_refresh_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardConfig {
    pub id: u32,
    pub master: SocketAddr,
    #[serde(default)]
    pub standbys: Vec<SocketAddr>,
}

fn default_true() -> bool {
    true
}
fn default_max_allowed_packet() -> usize {
    DEFAULT_MAX_ALLOWED_PACKET
}
fn default_handshake_timeout_ms() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_MS
}
fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn default_shutdown_timeout_ms() -> u64 {
    DEFAULT_SHUTDOWN_TIMEOUT_MS
}
fn default_buffer_size() -> usize {
    DEFAULT_BUFFER_SIZE
}
fn default_users_refresh_interval_ms() -> u64 {
    DEFAULT_USERS_REFRESH_INTERVAL_MS
}
fn default_users_min_refresh_interval_ms() -> u64 {
    DEFAULT_USERS_MIN_REFRESH_INTERVAL_MS
}

/// What is wrong with a configuration, said so an operator can fix it.
#[derive(Debug)]
pub enum ConfigError {
    Read { path: String, error: std::io::Error },
    Parse(toml::de::Error),
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => write!(f, "cannot read {path}: {error}"),
            ConfigError::Parse(e) => write!(f, "invalid configuration: {e}"),
            ConfigError::Invalid(why) => write!(f, "invalid configuration: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Config::from_toml(&text)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(ConfigError::Parse)?;
        config.validate()?;
        Ok(config)
    }

    /// The one-shard configuration of `dbrouter --listen A --backend B`: session
    /// mode, the backend's own accounts, read with the admin account named by
    /// `DBROUTER_ADMIN_USER` / `DBROUTER_ADMIN_PASSWORD`.
    pub fn single_backend(
        listen: SocketAddr,
        backend: SocketAddr,
        admin_user: String,
        admin_password: String,
    ) -> Result<Config, ConfigError> {
        let config = Config {
            proxy: ProxyConfig {
                listen,
                reactors: None,
                pin_cores: true,
                pool_mode: PoolMode::Session,
                max_allowed_packet: DEFAULT_MAX_ALLOWED_PACKET,
                handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
                connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
                shutdown_timeout_ms: DEFAULT_SHUTDOWN_TIMEOUT_MS,
                buffer_size: DEFAULT_BUFFER_SIZE,
                server_version: None,
            },
            users: Vec::new(),
            backend_users: Some(BackendUsersConfig {
                admin_user,
                admin_password,
                refresh_interval_ms: DEFAULT_USERS_REFRESH_INTERVAL_MS,
                min_refresh_interval_ms: DEFAULT_USERS_MIN_REFRESH_INTERVAL_MS,
            }),
            shards: vec![ShardConfig {
                id: 0,
                master: backend,
                standbys: Vec::new(),
            }],
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: cross-field rules and value ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(why));
        if self.shards.is_empty() {
            return invalid("at least one [[shard]] is required".into());
        }
        if self.shards.len() > 1 {
            // Routing by shard key arrives with the sharding issue; until then
            // a second shard would silently never be used.
            return invalid("this version routes to one shard only: keep one [[shard]]".into());
        }
        if self.users.is_empty() && self.backend_users.is_none() {
            return invalid(
                "nobody could log in: add a [[user]] or a [backend_users] section".into(),
            );
        }
        if self.proxy.reactors == Some(0) {
            return invalid("proxy.reactors must be at least 1".into());
        }
        if self.proxy.buffer_size < 1024 {
            return invalid("proxy.buffer_size must be at least 1024 bytes".into());
        }
        if self.proxy.max_allowed_packet < 1024 {
            return invalid("proxy.max_allowed_packet must be at least 1024 bytes".into());
        }
        for user in &self.users {
            if crate::protocol::auth::PasswordHash::parse(&user.password_hash).is_none() {
                return invalid(format!(
                    "user {:?}: password_hash must be \"\" or '*' followed by 40 hex digits \
                     (SELECT PASSWORD('...') prints it)",
                    user.name
                ));
            }
            if user.backend_user.is_some() != user.backend_password.is_some() {
                return invalid(format!(
                    "user {:?}: backend_user and backend_password go together",
                    user.name
                ));
            }
        }
        if let Some(b) = &self.backend_users {
            if b.admin_user.is_empty() {
                return invalid("backend_users.admin_user is empty".into());
            }
        }
        Ok(())
    }

    pub fn reactor_count(&self) -> usize {
        self.proxy
            .reactors
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.proxy.handshake_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.proxy.connect_timeout_ms)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.proxy.shutdown_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [proxy]
        listen = "127.0.0.1:3307"

        [[user]]
        name = "app"
        password_hash = "*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9"

        [[shard]]
        id = 0
        master = "127.0.0.1:3306"
    "#;

    #[test]
    fn minimal_file_gets_the_named_defaults() {
        let c = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(c.proxy.max_allowed_packet, DEFAULT_MAX_ALLOWED_PACKET);
        assert_eq!(c.proxy.buffer_size, DEFAULT_BUFFER_SIZE);
        assert_eq!(c.proxy.pool_mode, PoolMode::Session);
        assert!(c.proxy.pin_cores);
        assert_eq!(c.users[0].name, "app");
    }

    #[test]
    fn plaintext_password_is_refused() {
        let text = MINIMAL.replace("*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9", "secret");
        let err = Config::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("password_hash"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = MINIMAL.replace("[proxy]", "[proxy]\nlisten_port = 1");
        assert!(Config::from_toml(&text).is_err());
    }

    #[test]
    fn nobody_can_log_in_is_refused() {
        let text = MINIMAL.replace("[[user]]", "[unused]").replace(
            "name = \"app\"\n        password_hash = \"*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9\"",
            "",
        );
        assert!(Config::from_toml(&text).is_err());
    }
}
