//! `dbrouter`: command line, logging, and the threads' start and stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use clap::Parser;

use dbrouter::admin::{self, metrics::Metrics};
use dbrouter::config::{AdminConfig, Config, PoolMode, ADMIN_PASSWORD_ENV, ADMIN_USER_ENV};
use dbrouter::control::{self, UserDirectory};
use dbrouter::protocol::consts::{caps, mariadb};
use dbrouter::reactor::stats::{self, ReactorStats};
use dbrouter::reactor::{self, ShardAddr, Shared, MAX_SHARDS};
use dbrouter::route::scanner::ScanOptions;
use dbrouter::route::topology::Topology;

/// A thread-per-core sharding proxy for MySQL and MariaDB.
///
/// Start it with a configuration file (`--config`), or, to try it against one
/// server, with `--listen` and `--backend`: it then accepts the server's own
/// accounts, read with the admin account named by DBROUTER_ADMIN_USER and
/// DBROUTER_ADMIN_PASSWORD. Log level: RUST_LOG (error, warn, info, debug).
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// The TOML configuration file (see README.md, "Configuration").
    #[arg(long, short, conflicts_with_all = ["listen", "backend"])]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:6033 (one-shard mode).
    #[arg(long, requires = "backend")]
    listen: Option<SocketAddr>,
    /// The one backend server, e.g. 127.0.0.1:3306 (one-shard mode).
    #[arg(long, requires = "listen")]
    backend: Option<SocketAddr>,
    /// Reactor threads (default: one per core; overrides the file).
    #[arg(long)]
    reactors: Option<usize>,
    /// Pin each reactor to its own core (default: true; overrides the file).
    #[arg(long, value_name = "BOOL")]
    pin_cores: Option<bool>,
    /// `session` or `transaction` (see README.md; overrides the file).
    #[arg(long, value_name = "MODE", value_parser = parse_pool_mode)]
    pool_mode: Option<PoolMode>,
    /// Serve Prometheus metrics over HTTP at ADDR/metrics, e.g.
    /// 127.0.0.1:9911 (overrides the file's `[admin] listen`).
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
}

fn parse_pool_mode(text: &str) -> Result<PoolMode, String> {
    match text {
        "session" => Ok(PoolMode::Session),
        "transaction" => Ok(PoolMode::Transaction),
        other => Err(format!("{other:?}: expected session or transaction")),
    }
}

/// The server version announced when the backend cannot be asked at start.
/// MariaDB clients read the `5.5.5-` prefix as "this is MariaDB".
const FALLBACK_VERSION: &str = "5.5.5-10.11.0-MariaDB-dbrouter";
/// Capabilities assumed when the backend cannot be asked at start: what
/// MariaDB 10.x offers, minus what the proxy does not relay.
const FALLBACK_CAPS: u32 = 0xF7FF_FFFE;
const FALLBACK_CHARSET: u8 = 45; // utf8mb4_general_ci
/// How long the startup look at the backend's greeting may take.
const GREETING_TIMEOUT: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let mut config = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dbrouter: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = args.reactors {
        config.proxy.reactors = Some(n);
    }
    if let Some(pin) = args.pin_cores {
        config.proxy.pin_cores = pin;
    }
    if let Some(mode) = args.pool_mode {
        config.proxy.pool_mode = mode;
    }
    if let Some(listen) = args.admin_listen {
        config.admin = Some(AdminConfig { listen });
    }
    if args.pool_mode.is_some() || args.admin_listen.is_some() {
        if let Err(e) = config.validate() {
            eprintln!("dbrouter: {e}");
            return ExitCode::from(2);
        }
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dbrouter: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(args: &Args) -> Result<Config, String> {
    if let Some(path) = &args.config {
        return Config::from_file(path).map_err(|e| e.to_string());
    }
    let (Some(listen), Some(backend)) = (args.listen, args.backend) else {
        return Err("give --config FILE, or --listen ADDR --backend ADDR (see --help)".into());
    };
    let user = std::env::var(ADMIN_USER_ENV).map_err(|_| {
        format!(
            "--listen/--backend accept the backend's own accounts, read with an admin \
             account: set {ADMIN_USER_ENV} and {ADMIN_PASSWORD_ENV}"
        )
    })?;
    let password = std::env::var(ADMIN_PASSWORD_ENV).unwrap_or_default();
    Config::single_backend(listen, backend, user, password).map_err(|e| e.to_string())
}

/// `10.11.19-MariaDB-...` (or `5.5.5-10.11.19-...`) -> 101119, the form
/// versioned comments (`/*!100000 ... */`) are compared with.
fn version_number(version: &[u8]) -> u32 {
    let text = String::from_utf8_lossy(version);
    let text = text.strip_prefix("5.5.5-").unwrap_or(&text);
    let mut parts = text
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor, patch) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    major * 10_000 + minor * 100 + patch
}

fn run(config: Config) -> Result<(), String> {
    if config.shards.len() > MAX_SHARDS {
        return Err(format!("at most {MAX_SHARDS} shards are supported"));
    }
    let topology = Topology::from_config(&config);
    let designated = topology.shards.default_shard();
    // The designated shard speaks for all: its greeting sets what clients
    // are offered, and its accounts are the ones read.
    let shard = ShardAddr {
        shard: designated.id.0,
        addr: designated.master,
    };

    // What the backend says about itself decides what clients are offered,
    // so that replies can be relayed byte for byte.
    let facts = control::greeting::read_server_greeting(shard.addr, GREETING_TIMEOUT);
    let (version, backend_caps, backend_mariadb_caps, charset) = match &facts {
        Some(f) => (
            f.version.clone(),
            f.capabilities,
            f.mariadb_capabilities,
            f.charset,
        ),
        None => {
            log::warn!("{shard} did not greet us at start; announcing defaults");
            (
                FALLBACK_VERSION.to_string(),
                FALLBACK_CAPS,
                0,
                FALLBACK_CHARSET,
            )
        }
    };
    let server_version = config
        .proxy
        .server_version
        .clone()
        .unwrap_or(version)
        .into_bytes();
    // MariaDB's metadata caching only in session mode: there a backend
    // statement serves one client, while a pool shares it between clients
    // and the server tells only the first of them that its columns changed.
    let mut advertised_mariadb_caps = match config.proxy.pool_mode {
        PoolMode::Session => backend_mariadb_caps & mariadb::PROXY_SUPPORTED,
        PoolMode::Transaction => 0,
    };
    // It shapes replies, so every shard must offer it too.
    if advertised_mariadb_caps != 0 {
        let others = topology
            .shards
            .shards()
            .iter()
            .map(|s| s.master)
            .filter(|&addr| addr != shard.addr);
        advertised_mariadb_caps =
            control::greeting::offered_by_all(advertised_mariadb_caps, others, GREETING_TIMEOUT);
    }
    let mut advertised_caps = backend_caps & caps::PROXY_SUPPORTED;
    if advertised_mariadb_caps == 0 {
        advertised_caps |= caps::CLIENT_MYSQL;
    }
    let scan = ScanOptions::new(version_number(&server_version));

    let directory = match &config.backend_users {
        Some(_) => control::accounts::initial_directory(&config, shard.addr),
        None => UserDirectory::from_config(&config),
    };
    let users = Arc::new(ArcSwap::from_pointee(directory));
    let (refresh_tx, refresh_rx) = crossbeam_channel::bounded(1);
    let refresh = config.backend_users.is_some().then_some(refresh_tx);

    let reactor_count = config.reactor_count();
    let pin = config.proxy.pin_cores;
    let shard_ids: Vec<u32> = topology.shards.shards().iter().map(|s| s.id.0).collect();
    let stats: Box<[Arc<ReactorStats>]> = (0..reactor_count)
        .map(|_| Arc::new(ReactorStats::new(shard_ids.len())))
        .collect();
    let shared = Arc::new(Shared {
        config: config.clone(),
        users: users.clone(),
        refresh,
        topology: Arc::new(ArcSwap::from_pointee(topology)),
        scan,
        server_version,
        advertised_caps,
        advertised_mariadb_caps,
        server_charset: charset,
        connection_ids: AtomicU32::new(1),
        stopping: AtomicBool::new(false),
        stats: stats.clone(),
    });
    // Before the reactors: a port in use stops the start, with nothing to undo.
    let admin = match &config.admin {
        Some(a) => Some(
            admin::spawn(a.listen, Metrics::new(stats, shard_ids))
                .map_err(|e| format!("cannot listen on {} (admin): {e}", a.listen))?,
        ),
        None => None,
    };

    let cores = if pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let cores: Vec<_> = (0..reactor_count)
        .map(|id| (!cores.is_empty()).then(|| cores[id % cores.len()]))
        .collect();
    let reactors = reactor::spawn_all(shared.clone(), &cores)
        .map_err(|e| format!("cannot listen on {}: {e}", config.proxy.listen))?;
    let wakers: Vec<_> = reactors.iter().map(|r| r.waker.clone()).collect();

    let refresher = config.backend_users.clone().map(|b| {
        control::accounts::spawn_refresher(b, shard.addr, users.clone(), refresh_rx, wakers.clone())
    });
    log::info!(
        "dbrouter listening on {} with {reactor_count} reactors, {} shards, designated {shard}",
        config.proxy.listen,
        config.shards.len()
    );

    // The main thread only waits for a signal.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    if let Some(signal) = signals.forever().next() {
        log::info!(
            "signal {signal}: no new connections; running statements get {} ms",
            config.proxy.shutdown_timeout_ms
        );
    }
    shared.stopping.store(true, Ordering::Release);
    for waker in &wakers {
        let _ = waker.wake();
    }
    for r in reactors {
        let _ = r.thread.join();
    }
    if let Some(refresher) = refresher {
        refresher.stop();
    }
    // Scrapes are answered while the reactors drain; now it stops too.
    if let Some(admin) = admin {
        admin.stop();
    }
    if shared.config.proxy.pool_mode == PoolMode::Transaction {
        // The totals of the run, also for those who do not scrape.
        let pins: Vec<String> = reactor::PinReason::ALL
            .iter()
            .map(|r| {
                let n = stats::sum_u64(shared.stats.iter(), |s| &s.pins_started[r.index()]);
                format!("{}={n}", r.name())
            })
            .collect();
        log::info!("pins started: {}", pins.join(" "));
    }
    log::info!("dbrouter stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::version_number;

    #[test]
    fn versions_as_versioned_comments_compare_them() {
        assert_eq!(version_number(b"10.11.19-MariaDB-0+deb12u1"), 101119);
        assert_eq!(version_number(b"5.5.5-10.11.19-MariaDB"), 101119);
        assert_eq!(version_number(b"8.0.36"), 80036);
        assert_eq!(version_number(b"garbage"), 0);
    }
}
