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

use crate::route::schema::{KeyType, MissingKey, Schema, TableRule};

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
/// Buckets between keys and shards when `[sharding]` does not say. The count
/// is fixed for the life of a deployment: changing it moves almost every key
/// to another bucket, which is why several shards require it written down.
pub const DEFAULT_BUCKETS: u32 = 1024;
/// The most buckets: the bucket -> shard table keeps one entry per bucket.
pub const MAX_BUCKETS: u32 = 65536;
/// The most shards: the bucket -> shard table stores shard indexes as `u16`.
pub const MAX_SHARDS: usize = 65536;
/// A string key's collation when `[[table]]` does not say: MariaDB's default
/// `utf8mb4_general_ci` (case-insensitive, PAD SPACE).
pub const DEFAULT_COLLATION: Collation = Collation::GeneralCi;
/// What a statement on a sharded table without a usable key gets when
/// `[[table]]` does not say.
pub const DEFAULT_MISSING_KEY: MissingKeyPolicy = MissingKeyPolicy::Error;
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
    /// A client borrows a backend connection from the pool for one statement
    /// outside a transaction, or for a whole transaction, then gives it back
    /// (`[pool]`); state that cannot move pins it (ARCHITECTURE.md).
    Transaction,
}

/// `[pool]`: the backend connections of `pool_mode = "transaction"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Backend connections per shard for the whole process (split evenly
    /// between the reactors, which each own theirs).
    #[serde(default = "default_pool_max_per_shard")]
    pub max_per_shard: usize,
    /// How long a client waits for a connection of an exhausted pool before
    /// its statement gets an ERR naming the shard.
    #[serde(default = "default_pool_wait_timeout_ms")]
    pub wait_timeout_ms: u64,
    /// Clients one reactor lets wait per shard; more get the ERR at once.
    #[serde(default = "default_pool_max_waiting")]
    pub max_waiting: usize,
    /// An idle connection unused this long is closed.
    #[serde(default = "default_pool_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// A connection this old is closed when it comes back to the pool.
    #[serde(default = "default_pool_max_lifetime_ms")]
    pub max_lifetime_ms: u64,
    /// A connection idle longer than this is probed before it is lent.
    #[serde(default = "default_pool_check_after_ms")]
    pub check_after_ms: u64,
    /// Prepared statements kept per backend connection (least recently used
    /// closed first).
    #[serde(default = "default_pool_statement_cache")]
    pub statement_cache: usize,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            max_per_shard: default_pool_max_per_shard(),
            wait_timeout_ms: default_pool_wait_timeout_ms(),
            max_waiting: default_pool_max_waiting(),
            idle_timeout_ms: default_pool_idle_timeout_ms(),
            max_lifetime_ms: default_pool_max_lifetime_ms(),
            check_after_ms: default_pool_check_after_ms(),
            statement_cache: default_pool_statement_cache(),
        }
    }
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
    #[serde(default)]
    pub pool: PoolConfig,
    #[serde(rename = "shard")]
    pub shards: Vec<ShardConfig>,
    /// Buckets and their shards; optional while there is one shard.
    #[serde(default)]
    pub sharding: Option<ShardingConfig>,
    /// Sharded and global tables; tables not listed go to the default shard.
    #[serde(default, rename = "table")]
    pub tables: Vec<TableConfig>,
    /// The admin HTTP listener (`/metrics`); none without this section.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
}

/// `[admin]`: the HTTP listener of the admin plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the HTTP listener, e.g. `127.0.0.1:9911`. It has no
    /// authentication: keep it on loopback or a private network.
    pub listen: SocketAddr,
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

/// `[sharding]`: how keys are spread over the shards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardingConfig {
    /// The fixed number of buckets keys hash to (`DEFAULT_BUCKETS`).
    #[serde(default = "default_buckets")]
    pub buckets: u32,
    /// Where unsharded statements and global tables go; default: the lowest
    /// shard id.
    #[serde(default)]
    pub default_shard: Option<u32>,
    /// An explicit bucket map; default: equal contiguous ranges over the
    /// shards in id order.
    #[serde(default, rename = "range")]
    pub ranges: Vec<BucketRangeConfig>,
}

/// `[[sharding.range]]`: a run of buckets and the shard that holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketRangeConfig {
    /// `"FIRST-LAST"` (inclusive) or a single bucket `"N"`.
    pub buckets: BucketSpan,
    pub shard: u32,
}

/// An inclusive run of buckets, written `"0-511"` or `"7"` in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BucketSpan {
    pub first: u32,
    pub last: u32,
}

impl BucketSpan {
    /// How many buckets the span holds (0 if `first > last`).
    pub fn len(&self) -> u64 {
        (u64::from(self.last) + 1).saturating_sub(u64::from(self.first))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TryFrom<String> for BucketSpan {
    type Error = String;

    fn try_from(text: String) -> Result<BucketSpan, String> {
        let number = |s: &str| s.trim().parse::<u32>().ok();
        let span = match text.split_once('-') {
            Some((first, last)) => number(first).zip(number(last)),
            None => number(&text).map(|n| (n, n)),
        };
        match span {
            Some((first, last)) => Ok(BucketSpan { first, last }),
            None => Err(format!(
                "bucket range {text:?}: write \"FIRST-LAST\" (inclusive, like \"0-511\") or one \
                 bucket number"
            )),
        }
    }
}

impl fmt::Display for BucketSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// `[[table]]`: a sharded table (`key` + `key_type`) or a global one
/// (`global = true`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// The bare table name (no database), matched case-insensitively.
    pub name: String,
    /// The shard key column.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_type: Option<KeyTypeConfig>,
    /// String keys only; default `DEFAULT_COLLATION`.
    #[serde(default)]
    pub collation: Option<Collation>,
    /// Sharded tables only; default `DEFAULT_MISSING_KEY`.
    #[serde(default)]
    pub missing_key: Option<MissingKeyPolicy>,
    /// A table every shard needs, kept on the default shard.
    #[serde(default)]
    pub global: bool,
}

/// `key_type`: what the key column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyTypeConfig {
    /// Any integer column (TINYINT .. BIGINT, signed or unsigned).
    Int,
    /// A character or binary string column; see `collation`.
    String,
}

/// `collation`: how the server compares a string key column, which decides
/// the bytes that are hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Collation {
    /// A case-insensitive PAD SPACE collation such as MariaDB's default
    /// `utf8mb4_general_ci`: ASCII case and trailing spaces are ignored.
    #[serde(rename = "general_ci")]
    GeneralCi,
    /// A `_bin` PAD SPACE collation: bytes compared, trailing spaces ignored.
    #[serde(rename = "bin")]
    Bin,
    /// VARBINARY / BINARY: exact bytes.
    #[serde(rename = "binary")]
    Binary,
}

/// `missing_key`: what a statement on a sharded table gets when it has no
/// usable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MissingKeyPolicy {
    /// An ERR naming the table and the key column.
    #[default]
    Error,
}

fn default_buckets() -> u32 {
    DEFAULT_BUCKETS
}
fn default_pool_max_per_shard() -> usize {
    32
}
fn default_pool_wait_timeout_ms() -> u64 {
    5_000
}
fn default_pool_max_waiting() -> usize {
    10_000
}
fn default_pool_idle_timeout_ms() -> u64 {
    300_000
}
fn default_pool_max_lifetime_ms() -> u64 {
    3_600_000
}
fn default_pool_check_after_ms() -> u64 {
    1_000
}
fn default_pool_statement_cache() -> usize {
    256
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
            pool: PoolConfig::default(),
            shards: vec![ShardConfig {
                id: 0,
                master: backend,
                standbys: Vec::new(),
            }],
            sharding: None,
            tables: Vec::new(),
            admin: None,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: cross-field rules and value ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(why));
        self.validate_shards()?;
        self.validate_tables()?;
        if self.users.is_empty() && self.backend_users.is_none() {
            return invalid(
                "nobody could log in: add a [[user]] or a [backend_users] section".into(),
            );
        }
        if self.proxy.reactors == Some(0) {
            return invalid("proxy.reactors must be at least 1".into());
        }
        if self.proxy.pool_mode == PoolMode::Transaction
            && self.pool.max_per_shard < self.reactor_count()
        {
            return invalid(format!(
                "pool.max_per_shard ({}) must be at least the number of reactors ({}): each \
                 reactor owns its share of the connections",
                self.pool.max_per_shard,
                self.reactor_count()
            ));
        }
        if self.pool.statement_cache == 0 {
            return invalid("pool.statement_cache must be at least 1".into());
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
        if let Some(admin) = &self.admin {
            if admin.listen == self.proxy.listen {
                return invalid(format!(
                    "admin.listen and proxy.listen are both {}: give the admin listener its \
                     own port",
                    admin.listen
                ));
            }
        }
        Ok(())
    }

    /// Shards, buckets and the bucket map.
    fn validate_shards(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(why));
        if self.shards.is_empty() {
            return invalid("at least one [[shard]] is required (id and master)".into());
        }
        if self.shards.len() > MAX_SHARDS {
            return invalid(format!(
                "{} [[shard]]s: at most {MAX_SHARDS} are supported",
                self.shards.len()
            ));
        }
        let mut backends: Vec<(SocketAddr, u32)> = Vec::new();
        for (i, shard) in self.shards.iter().enumerate() {
            if self.shards[..i].iter().any(|s| s.id == shard.id) {
                return invalid(format!(
                    "[[shard]] id {} is used twice: give every shard its own id",
                    shard.id
                ));
            }
            for addr in std::iter::once(&shard.master).chain(&shard.standbys) {
                if let Some((_, other)) = backends.iter().find(|(a, _)| a == addr) {
                    return invalid(format!(
                        "backend {addr} is listed twice (shard {other} and shard {}): each \
                         master or standby belongs to one shard once",
                        shard.id
                    ));
                }
                backends.push((*addr, shard.id));
            }
        }
        let Some(sharding) = &self.sharding else {
            if self.shards.len() > 1 {
                return invalid(format!(
                    "{} [[shard]]s need a [sharding] section: write at least \
                     `[sharding]` and `buckets = {DEFAULT_BUCKETS}`, since changing the bucket \
                     count later moves keys between shards",
                    self.shards.len()
                ));
            }
            return Ok(());
        };
        if sharding.buckets == 0 || sharding.buckets > MAX_BUCKETS {
            return invalid(format!(
                "sharding.buckets = {}: use 1 to {MAX_BUCKETS} (default {DEFAULT_BUCKETS})",
                sharding.buckets
            ));
        }
        if let Some(id) = sharding.default_shard {
            if !self.shards.iter().any(|s| s.id == id) {
                return invalid(format!(
                    "sharding.default_shard = {id} names no [[shard]]: use one of the shard ids \
                     ({})",
                    self.shard_ids()
                ));
            }
        }
        if sharding.ranges.is_empty() {
            if (sharding.buckets as usize) < self.shards.len() {
                return invalid(format!(
                    "sharding.buckets = {} is fewer than the {} shards, so some would hold no \
                     bucket: raise buckets or list [[sharding.range]]s",
                    sharding.buckets,
                    self.shards.len()
                ));
            }
            return Ok(());
        }
        self.validate_ranges(sharding)
    }

    /// Every bucket in exactly one `[[sharding.range]]`, each naming a shard.
    fn validate_ranges(&self, sharding: &ShardingConfig) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(why));
        let last_bucket = sharding.buckets - 1;
        // Which range (index) holds each bucket.
        let mut owner: Vec<Option<usize>> = vec![None; sharding.buckets as usize];
        for (i, range) in sharding.ranges.iter().enumerate() {
            let span = range.buckets;
            if span.first > span.last {
                return invalid(format!(
                    "[[sharding.range]] buckets = \"{}-{}\": write the lower bucket first",
                    span.first, span.last
                ));
            }
            if span.last > last_bucket {
                return invalid(format!(
                    "[[sharding.range]] buckets = \"{span}\" goes past the last bucket, \
                     {last_bucket} (sharding.buckets = {}): buckets are numbered from 0",
                    sharding.buckets
                ));
            }
            if !self.shards.iter().any(|s| s.id == range.shard) {
                return invalid(format!(
                    "[[sharding.range]] buckets = \"{span}\" names shard {}, which is no \
                     [[shard]]: use one of the shard ids ({})",
                    range.shard,
                    self.shard_ids()
                ));
            }
            for bucket in span.first..=span.last {
                if let Some(other) = owner[bucket as usize].replace(i) {
                    return invalid(format!(
                        "bucket {bucket} is in two [[sharding.range]]s (\"{}\" and \"{span}\"): \
                         each bucket belongs to exactly one range",
                        sharding.ranges[other].buckets
                    ));
                }
            }
        }
        if let Some(first) = owner.iter().position(Option::is_none) {
            let last = owner[first..]
                .iter()
                .position(Option::is_some)
                .map_or(last_bucket as usize, |n| first + n - 1);
            let gap = BucketSpan {
                first: first as u32,
                last: last as u32,
            };
            return invalid(format!(
                "buckets \"{gap}\" are in no [[sharding.range]]: every bucket from 0 to \
                 {last_bucket} must belong to exactly one range"
            ));
        }
        Ok(())
    }

    /// Table names unique; each table sharded or global, consistently.
    fn validate_tables(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(why));
        for (i, table) in self.tables.iter().enumerate() {
            let name = &table.name;
            if name.is_empty() || name.contains(['.', '`']) || name.trim() != name {
                return invalid(format!(
                    "[[table]] name = {name:?}: write the bare table name, without database, \
                     quotes or spaces"
                ));
            }
            if self.tables[..i]
                .iter()
                .any(|t| t.name.eq_ignore_ascii_case(name))
            {
                return invalid(format!(
                    "[[table]] {name:?} is listed twice (names are matched case-insensitively): \
                     keep one"
                ));
            }
            if table.global {
                if table.key.is_some() || table.key_type.is_some() {
                    return invalid(format!(
                        "[[table]] {name:?} is global and has a key: a table is either sharded \
                         (key and key_type) or global = true, not both"
                    ));
                }
                if table.collation.is_some() || table.missing_key.is_some() {
                    return invalid(format!(
                        "[[table]] {name:?} is global: collation and missing_key belong to \
                         sharded tables, remove them"
                    ));
                }
                continue;
            }
            let Some(key) = &table.key else {
                return invalid(format!(
                    "[[table]] {name:?} has no key: add key = \"column\" and key_type = \
                     \"int\" or \"string\", or global = true"
                ));
            };
            if key.is_empty() || key.contains(['.', '`']) || key.trim() != key {
                return invalid(format!(
                    "[[table]] {name:?}: key = {key:?} must be a bare column name, without \
                     table, quotes or spaces"
                ));
            }
            let Some(key_type) = table.key_type else {
                return invalid(format!(
                    "[[table]] {name:?} has key {key:?} but no key_type: add key_type = \"int\" \
                     or \"string\""
                ));
            };
            if key_type != KeyTypeConfig::String && table.collation.is_some() {
                return invalid(format!(
                    "[[table]] {name:?}: collation applies to key_type = \"string\" only, \
                     remove it for an int key"
                ));
            }
        }
        Ok(())
    }

    fn shard_ids(&self) -> String {
        let ids: Vec<String> = self.shards.iter().map(|s| s.id.to_string()).collect();
        ids.join(", ")
    }

    /// The bucket count keys hash to.
    pub fn buckets(&self) -> u32 {
        self.sharding
            .as_ref()
            .map_or(DEFAULT_BUCKETS, |s| s.buckets)
    }

    /// The shard unsharded statements and global tables go to.
    pub fn default_shard_id(&self) -> u32 {
        self.sharding
            .as_ref()
            .and_then(|s| s.default_shard)
            .or_else(|| self.shards.iter().map(|s| s.id).min())
            .unwrap_or(0)
    }

    /// The bucket map in effect: the explicit `[[sharding.range]]`s, or
    /// equal contiguous ranges over the shards in id order (with `n` shards
    /// and `B` buckets, the `i`-th gets buckets `i*B/n .. (i+1)*B/n`).
    pub fn bucket_ranges(&self) -> Vec<BucketRangeConfig> {
        if let Some(s) = &self.sharding {
            if !s.ranges.is_empty() {
                return s.ranges.clone();
            }
        }
        let mut ids: Vec<u32> = self.shards.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        let buckets = u64::from(self.buckets());
        let n = ids.len() as u64;
        ids.iter()
            .zip(0u64..)
            .filter_map(|(&shard, i)| {
                let first = i * buckets / n;
                let end = (i + 1) * buckets / n;
                (end > first).then(|| BucketRangeConfig {
                    buckets: BucketSpan {
                        first: first as u32,
                        last: (end - 1) as u32,
                    },
                    shard,
                })
            })
            .collect()
    }

    /// The tables the router knows: `key_type` and `collation` mapped to the
    /// comparison the key column makes.
    pub fn schema(&self) -> Schema {
        self.tables.iter().fold(Schema::new(), |schema, t| {
            let rule = match (&t.key, t.key_type) {
                (Some(key), Some(key_type)) if !t.global => TableRule::Sharded {
                    key: key.to_ascii_lowercase().into(),
                    key_type: match key_type {
                        KeyTypeConfig::Int => KeyType::Int,
                        KeyTypeConfig::String => match t.collation.unwrap_or(DEFAULT_COLLATION) {
                            Collation::GeneralCi => KeyType::StringCaseInsensitive,
                            Collation::Bin => KeyType::StringBinary { pad_space: true },
                            Collation::Binary => KeyType::StringBinary { pad_space: false },
                        },
                    },
                    missing_key: match t.missing_key.unwrap_or(DEFAULT_MISSING_KEY) {
                        MissingKeyPolicy::Error => MissingKey::Error,
                    },
                },
                _ => TableRule::Global,
            };
            schema.with_table(&t.name, rule)
        })
    }

    pub fn reactor_count(&self) -> usize {
        self.proxy
            .reactors
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.proxy.handshake_timeout_ms)
    }

    /// This reactor's share of `pool.max_per_shard` (the first reactors take
    /// the remainder), so the whole process never exceeds it.
    pub fn pool_share(&self, reactor: usize) -> usize {
        let n = self.reactor_count();
        let max = self.pool.max_per_shard;
        max / n + usize::from(reactor < max % n)
    }

    pub fn pool_wait_timeout(&self) -> Duration {
        Duration::from_millis(self.pool.wait_timeout_ms)
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
    fn the_admin_listener_is_optional_and_has_its_own_port() {
        assert!(Config::from_toml(MINIMAL).unwrap().admin.is_none());
        let with = format!("{MINIMAL}\n[admin]\nlisten = \"127.0.0.1:9911\"\n");
        let c = Config::from_toml(&with).unwrap();
        assert_eq!(c.admin.unwrap().listen, "127.0.0.1:9911".parse().unwrap());
        let same = format!("{MINIMAL}\n[admin]\nlisten = \"127.0.0.1:3307\"\n");
        refused(&same, "admin.listen", "its own port");
        let unknown = format!("{MINIMAL}\n[admin]\nlisten = \"127.0.0.1:9911\"\nport = 1\n");
        assert!(Config::from_toml(&unknown).is_err());
    }

    /// README's configuration reference is a file dbrouter accepts, with
    /// every section it documents (`[admin]` included).
    #[test]
    fn the_readme_configuration_reference_parses() {
        let readme = include_str!("../README.md");
        let section = readme
            .split("\n## Configuration\n")
            .nth(1)
            .expect("README has a Configuration section");
        let toml = section
            .split("```toml\n")
            .nth(1)
            .and_then(|block| block.split("\n```").next())
            .expect("the section opens with a TOML block");
        let c = Config::from_toml(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert!(c.admin.is_some() && c.backend_users.is_some());
        assert_eq!(c.proxy.reactors, Some(2));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = MINIMAL.replace("[proxy]", "[proxy]\nlisten_port = 1");
        assert!(Config::from_toml(&text).is_err());
    }

    const TWO_SHARDS: &str = r#"
        [proxy]
        listen = "127.0.0.1:3307"

        [[user]]
        name = "app"
        password_hash = ""

        [[shard]]
        id = 0
        master = "127.0.0.1:3306"

        [[shard]]
        id = 1
        master = "127.0.0.1:3316"
        standbys = ["127.0.0.1:3317"]

        [sharding]
        buckets = 1024
    "#;

    /// The configuration's error message, which must name `field` and say
    /// how to fix it (`fix`).
    fn refused(text: &str, field: &str, fix: &str) {
        let (err, one_line) = match Config::from_toml(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            // toml's own errors quote the offending line below the message.
            Err(e @ ConfigError::Parse(_)) => (e.to_string(), false),
            Err(e) => (e.to_string(), true),
        };
        assert!(err.contains(field), "{err:?} should name {field:?}");
        assert!(err.contains(fix), "{err:?} should say {fix:?}");
        assert!(
            !one_line || !err.contains('\n'),
            "{err:?} should be one line"
        );
    }

    #[test]
    fn one_shard_needs_no_sharding_section() {
        let c = Config::from_toml(MINIMAL).unwrap();
        assert!(c.sharding.is_none() && c.tables.is_empty());
        assert_eq!(c.buckets(), DEFAULT_BUCKETS);
        assert_eq!(c.default_shard_id(), 0);
        assert_eq!(
            c.bucket_ranges(),
            vec![BucketRangeConfig {
                buckets: BucketSpan {
                    first: 0,
                    last: DEFAULT_BUCKETS - 1
                },
                shard: 0
            }]
        );
        assert_eq!(c.schema().tables().count(), 0);
    }

    #[test]
    fn single_backend_is_one_shard_without_tables() {
        let c = Config::single_backend(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:3306".parse().unwrap(),
            "admin".into(),
            String::new(),
        )
        .unwrap();
        assert_eq!(c.shards.len(), 1);
        assert!(c.sharding.is_none() && c.tables.is_empty());
        assert_eq!(c.bucket_ranges().len(), 1);
    }

    #[test]
    fn the_documented_example_parses() {
        let text = format!(
            "{TWO_SHARDS}default_shard = 1\n{}",
            r#"
            [[table]]
            name = "users"
            key = "userid"
            key_type = "int"
            missing_key = "error"

            [[table]]
            name = "accounts"
            key = "Email"
            key_type = "string"

            [[table]]
            name = "tokens"
            key = "token"
            key_type = "string"
            collation = "bin"

            [[table]]
            name = "blobs"
            key = "digest"
            key_type = "string"
            collation = "binary"

            [[table]]
            name = "countries"
            global = true
            "#
        );
        let c = Config::from_toml(&text).unwrap();
        assert_eq!(c.default_shard_id(), 1);
        let schema = c.schema();
        let sharded = |table: &[u8]| match schema.table(table) {
            Some(TableRule::Sharded {
                key,
                key_type,
                missing_key,
            }) => (key.to_string(), *key_type, *missing_key),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            sharded(b"USERS"),
            ("userid".into(), KeyType::Int, MissingKey::Error)
        );
        assert_eq!(
            sharded(b"accounts"),
            (
                "email".into(),
                KeyType::StringCaseInsensitive,
                MissingKey::Error
            )
        );
        assert_eq!(
            sharded(b"tokens").1,
            KeyType::StringBinary { pad_space: true }
        );
        assert_eq!(
            sharded(b"blobs").1,
            KeyType::StringBinary { pad_space: false }
        );
        assert_eq!(schema.table(b"countries"), Some(&TableRule::Global));
        assert_eq!(schema.table(b"orders"), None);
    }

    #[test]
    fn default_ranges_are_equal_and_contiguous_in_id_order() {
        // Ids out of order in the file: ranges follow the ids.
        let text = TWO_SHARDS.replace("id = 0", "id = 7").replace(
            "[sharding]",
            "[[shard]]\nid = 3\nmaster = \"127.0.0.1:3326\"\n[sharding]",
        );
        let c = Config::from_toml(&text).unwrap();
        let ranges: Vec<(u32, u32, u32)> = c
            .bucket_ranges()
            .iter()
            .map(|r| (r.buckets.first, r.buckets.last, r.shard))
            .collect();
        // 3 shards over 1024: i*1024/3 = 0, 341, 682, 1024.
        assert_eq!(ranges, [(0, 340, 1), (341, 681, 3), (682, 1023, 7)]);
        assert_eq!(c.default_shard_id(), 1, "the lowest id");
    }

    #[test]
    fn explicit_ranges_are_used_as_written() {
        let text = format!(
            "{TWO_SHARDS}{}",
            r#"
            [[sharding.range]]
            buckets = "0-99"
            shard = 1
            [[sharding.range]]
            buckets = "100"
            shard = 0
            [[sharding.range]]
            buckets = "101-1023"
            shard = 1
            "#
        );
        let c = Config::from_toml(&text).unwrap();
        let spans: Vec<String> = c
            .bucket_ranges()
            .iter()
            .map(|r| format!("{}->{}", r.buckets, r.shard))
            .collect();
        assert_eq!(spans, ["0-99->1", "100->0", "101-1023->1"]);
    }

    #[test]
    fn shard_errors() {
        let no_shard = MINIMAL
            .replace("[[shard]]", "")
            .replace("id = 0", "")
            .replace("master = \"127.0.0.1:3306\"", "");
        assert!(Config::from_toml(&no_shard).is_err(), "shard is required");
        let c = Config {
            shards: Vec::new(),
            ..Config::from_toml(MINIMAL).unwrap()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("[[shard]]") && err.contains("required"),
            "{err}"
        );

        refused(&TWO_SHARDS.replace("id = 1", "id = 0"), "id 0", "own id");
        refused(
            &TWO_SHARDS.replace("127.0.0.1:3317", "127.0.0.1:3306"),
            "127.0.0.1:3306",
            "belongs to one shard",
        );
        refused(
            &TWO_SHARDS.replace("127.0.0.1:3316", "127.0.0.1:3317"),
            "127.0.0.1:3317",
            "belongs to one shard",
        );
        refused(
            &TWO_SHARDS.replace("[sharding]\n        buckets = 1024", ""),
            "[sharding]",
            "buckets = 1024",
        );
    }

    #[test]
    fn bucket_count_errors() {
        for bad in ["0", "65537", "4294967295"] {
            refused(
                &TWO_SHARDS.replace("buckets = 1024", &format!("buckets = {bad}")),
                "sharding.buckets",
                "use 1 to 65536",
            );
        }
        assert!(Config::from_toml(&TWO_SHARDS.replace("buckets = 1024", "buckets = -1")).is_err());
        refused(
            &TWO_SHARDS.replace("buckets = 1024", "buckets = 1"),
            "sharding.buckets",
            "raise buckets",
        );
        // The limits themselves are fine.
        for good in ["2", "3", "65536"] {
            let text = TWO_SHARDS.replace("buckets = 1024", &format!("buckets = {good}"));
            Config::from_toml(&text).unwrap();
        }
    }

    #[test]
    fn default_shard_must_exist() {
        refused(
            &format!("{TWO_SHARDS}default_shard = 2\n"),
            "sharding.default_shard",
            "use one of the shard ids (0, 1)",
        );
    }

    fn with_ranges(ranges: &[(&str, u32)]) -> String {
        let mut text = TWO_SHARDS.to_string();
        for (span, shard) in ranges {
            text.push_str(&format!(
                "[[sharding.range]]\nbuckets = \"{span}\"\nshard = {shard}\n"
            ));
        }
        text
    }

    #[test]
    fn range_errors() {
        refused(
            &with_ranges(&[("511-0", 0), ("512-1023", 1)]),
            "buckets = \"511-0\"",
            "lower bucket first",
        );
        refused(
            &with_ranges(&[("0-511", 0), ("512-1024", 1)]),
            "buckets = \"512-1024\"",
            "numbered from 0",
        );
        refused(
            &with_ranges(&[("0-511", 0), ("512-1023", 2)]),
            "names shard 2",
            "use one of the shard ids (0, 1)",
        );
        refused(
            &with_ranges(&[("0-600", 0), ("512-1023", 1)]),
            "bucket 512 is in two [[sharding.range]]s (\"0-600\" and \"512-1023\")",
            "exactly one range",
        );
        refused(
            &with_ranges(&[("0-511", 0), ("700-1023", 1)]),
            "buckets \"512-699\" are in no [[sharding.range]]",
            "must belong to exactly one range",
        );
        refused(
            &with_ranges(&[("0-511", 0)]),
            "buckets \"512-1023\" are in no",
            "exactly one range",
        );
        refused(
            &with_ranges(&[("1-1023", 0)]),
            "buckets \"0\" are in no",
            "exactly one range",
        );
        for bad in ["0..511", "a-b", "", "-5", "1-2-3"] {
            refused(
                &with_ranges(&[(bad, 0)]),
                &format!("bucket range {bad:?}"),
                "\"FIRST-LAST\"",
            );
        }
        // A shard without buckets is allowed (a new shard before bucket moves).
        Config::from_toml(&with_ranges(&[("0-1023", 1)])).unwrap();
    }

    fn with_table(fields: &str) -> String {
        format!("{MINIMAL}\n[[table]]\n{fields}\n")
    }

    #[test]
    fn table_errors() {
        let users = "name = \"users\"\nkey = \"userid\"\nkey_type = \"int\"";
        refused(
            &format!(
                "{}[[table]]\n{}",
                with_table(users),
                users.replace("users", "Users")
            ),
            "[[table]] \"Users\" is listed twice",
            "keep one",
        );
        for bad in ["db.users", "`users`", "", " users"] {
            refused(
                &with_table(&format!("name = {bad:?}\nglobal = true")),
                "[[table]] name",
                "bare table name",
            );
        }
        refused(
            &with_table(&format!("{users}\nglobal = true")),
            "\"users\" is global and has a key",
            "either sharded (key and key_type) or global = true",
        );
        refused(
            &with_table("name = \"c\"\nglobal = true\ncollation = \"bin\""),
            "\"c\" is global: collation",
            "remove them",
        );
        refused(
            &with_table("name = \"c\"\nglobal = true\nmissing_key = \"error\""),
            "missing_key",
            "remove them",
        );
        refused(
            &with_table("name = \"users\""),
            "\"users\" has no key",
            "or global = true",
        );
        refused(
            &with_table("name = \"users\"\nkey_type = \"int\""),
            "\"users\" has no key",
            "add key = ",
        );
        refused(
            &with_table("name = \"users\"\nkey = \"userid\""),
            "no key_type",
            "add key_type = \"int\" or \"string\"",
        );
        for bad in ["users.userid", "`userid`", ""] {
            refused(
                &with_table(&format!(
                    "name = \"users\"\nkey = {bad:?}\nkey_type = \"int\""
                )),
                "key = ",
                "bare column name",
            );
        }
        refused(
            &with_table(&format!("{users}\ncollation = \"bin\"")),
            "collation",
            "remove it for an int key",
        );
        // Unknown words: serde names the field and the accepted values.
        refused(
            &with_table("name = \"u\"\nkey = \"k\"\nkey_type = \"uuid\""),
            "key_type",
            "expected `int` or `string`",
        );
        refused(
            &with_table("name = \"u\"\nkey = \"k\"\nkey_type = \"string\"\ncollation = \"utf8mb4_general_ci\""),
            "collation",
            "`general_ci`, `bin`, `binary`",
        );
        refused(
            &with_table(&format!("{users}\nmissing_key = \"scatter\"")),
            "missing_key",
            "`error`",
        );
        refused(
            &with_table(&format!("{users}\nshard_key = \"x\"")),
            "shard_key",
            "expected one of",
        );
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
