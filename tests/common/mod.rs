//! Shared fixture for the integration tests: real servers, never mocks.
//!
//! - [`MariaDb`]: a real `mariadbd` on a free loopback port in a fresh
//!   temporary directory, with the accounts the tests use
//!   ([`ADMIN_USER`], [`APP_USER`]) and the database `app`.
//! - [`Dbrouter`]: the real `dbrouter` binary, started with a config file
//!   ([`Dbrouter::start`], see [`ConfigBuilder`]) or in one-backend command
//!   line mode ([`Dbrouter::start_single`]).
//! - [`Target`]: where a scenario connects (direct or through the proxy), so
//!   that every scenario runs both ways and the results can be compared.
//! - [`mariadb_cli`]: the `mariadb` command-line client, bounded in time.
//! - [`raw`]: a small raw-socket MySQL client (native password login, packet
//!   framing) for commands the `mysql` crate does not expose and for bad input.
//!
//! Every process started here is stopped on `Drop` (SIGTERM, bounded wait,
//! SIGKILL), and also dies with SIGKILL if the thread that started it dies
//! (`PR_SET_PDEATHSIG`): start a server on the thread that owns it.
#![allow(dead_code)]

pub mod raw;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder};
use sha1::{Digest, Sha1};

/// The account the proxy reads the backends' accounts with.
pub const ADMIN_USER: &str = "dbrouter_admin";
pub const ADMIN_PASSWORD: &str = "dbrouter_admin_password";
/// The application account, with explicit privileges on database `app`.
pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "app_password";
pub const APP_DB: &str = "app";

/// How long a server may take to accept its first login.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a process may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound for one `mariadb` CLI run.
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// Server flags shared by the template and every instance (the InnoDB sizes
/// must match between `mariadb-install-db` and `mariadbd`).
const INNODB_FLAGS: [&str; 2] = [
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=16M",
];

/// Statements run as root on every fresh instance.
const SETUP_SQL: &str = "\
CREATE DATABASE app;\n\
CREATE USER 'dbrouter_admin'@'%' IDENTIFIED BY 'dbrouter_admin_password';\n\
GRANT SELECT ON mysql.* TO 'dbrouter_admin'@'%';\n\
CREATE USER 'app'@'%' IDENTIFIED BY 'app_password';\n\
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, \
CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE ROUTINE, ALTER ROUTINE, \
CREATE VIEW, SHOW VIEW, TRIGGER ON app.* TO 'app'@'%';\n";

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// A free TCP port on 127.0.0.1 (bound, read, released: another process may
/// still take it before the caller binds it; the starters retry on that).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local_addr")
        .port()
}

/// The server-format mysql_native_password hash: `*` and the uppercase hex
/// of SHA1(SHA1(password)), as `SELECT PASSWORD('...')` prints it.
pub fn native_password_hash(password: &str) -> String {
    if password.is_empty() {
        return String::new();
    }
    let stage2 = Sha1::digest(Sha1::digest(password.as_bytes()));
    let mut out = String::from("*");
    for b in stage2.iter() {
        write!(out, "{b:02X}").unwrap();
    }
    out
}

/// A TOML basic string literal for `s`.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                write!(out, "\\u{:04X}", c as u32).unwrap();
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn send_signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is one of
    // our own children that has not been reaped yet, so it cannot have been
    // recycled for an unrelated process.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Makes `cmd`'s child receive SIGKILL when the thread that spawns it dies,
/// so that a crashed or aborted test leaves no server behind.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe functions may be called. It calls only prctl(2) and
    // getppid(2), both plain system calls that take no locks and allocate
    // nothing, and _exit(2). The closure captures only a Copy integer.
    // Note: PR_SET_PDEATHSIG fires when the *thread* that forked exits, which
    // is why servers must be started on the thread that owns them.
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// SIGTERM, wait up to `timeout`, then SIGKILL and reap. Returns the status.
fn stop_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    send_signal(child.id(), libc::SIGTERM);
    if let Some(status) = wait_child(child, timeout) {
        return Some(status);
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Waits up to `timeout` for `child` to exit.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

/// Whether a process with this pid exists (a zombie counts as gone).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

/// Resident memory of a process in KiB (VmRSS from /proc/PID/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}

/// Options for a `mysql` crate connection to 127.0.0.1:`port`.
pub fn opts(port: u16, user: &str, password: &str, db: Option<&str>) -> OptsBuilder {
    OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .db_name(db)
        .prefer_socket(false)
        .tcp_connect_timeout(Some(Duration::from_secs(10)))
        .read_timeout(Some(Duration::from_secs(60)))
        .write_timeout(Some(Duration::from_secs(60)))
}

/// A `mysql` crate connection to 127.0.0.1:`port`.
pub fn connect(port: u16, user: &str, password: &str, db: Option<&str>) -> mysql::Result<Conn> {
    Conn::new(opts(port, user, password, db))
}

// ---------------------------------------------------------------------------
// MariaDB
// ---------------------------------------------------------------------------

/// The data directory made once per test process by `mariadb-install-db`,
/// copied for every instance. Removed at process exit.
fn template_datadir() -> &'static Path {
    static TEMPLATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    // OnceLock::get_or_init blocks concurrent callers until the first one has
    // finished, so concurrent tests install the template only once.
    let result = TEMPLATE.get_or_init(|| {
        // Kept past this scope: removed at process exit instead.
        let dir = tempfile::Builder::new()
            .prefix("dbrouter-template-")
            .tempdir()
            .map_err(|e| format!("template dir: {e}"))?
            .keep();
        register_template_cleanup(&dir);
        let datadir = dir.join("data");
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .args(INNODB_FLAGS)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!("cannot run mariadb-install-db (apt-get install mariadb-server): {e}")
            })?;
        if !out.status.success() {
            return Err(format!(
                "mariadb-install-db failed: {}\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(datadir)
    });
    match result {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

static TEMPLATE_ROOT: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_template() {
    if let Some(dir) = TEMPLATE_ROOT.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn register_template_cleanup(dir: &Path) {
    if TEMPLATE_ROOT.set(dir.to_path_buf()).is_ok() {
        // SAFETY: atexit(3) only stores the function pointer; the function
        // is extern "C", never unwinds (it ignores every error), and reads a
        // static that is set before registration and never changed after.
        unsafe {
            libc::atexit(remove_template);
        }
    }
}

/// A real `mariadbd` on a free 127.0.0.1 port, in its own temporary
/// directory, stopped and removed on drop.
pub struct MariaDb {
    child: Option<Child>,
    pid: u32,
    port: u16,
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

impl MariaDb {
    /// Starts a server with the standard flags and accounts.
    pub fn start() -> MariaDb {
        MariaDb::start_with(&[])
    }

    /// Starts a server with extra `mariadbd` flags (e.g. `--max-connections=5`).
    pub fn start_with(extra: &[&str]) -> MariaDb {
        let template = template_datadir();
        let dir = tempfile::Builder::new()
            .prefix("dbrouter-mariadb-")
            .tempdir()
            .expect("temp dir");
        let datadir = dir.path().join("data");
        let status = Command::new("cp")
            .arg("-a")
            .arg(template)
            .arg(&datadir)
            .status()
            .expect("run cp");
        assert!(status.success(), "cp -a template datadir failed: {status}");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut last_error = String::new();
        // A free port may be taken by someone else before mariadbd binds it.
        for _attempt in 0..5 {
            let port = free_port();
            match MariaDb::spawn(dir.path(), port, &extra) {
                Ok(child) => {
                    let db = MariaDb {
                        pid: child.id(),
                        child: Some(child),
                        port,
                        extra,
                        dir,
                    };
                    db.sql(SETUP_SQL);
                    return db;
                }
                Err(e) if e.contains("Address already in use") => last_error = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("mariadbd could not bind a free port: {last_error}");
    }

    fn spawn(dir: &Path, port: u16, extra: &[String]) -> Result<Child, String> {
        let datadir = dir.join("data");
        let log_path = dir.join("mariadbd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        // Its own directory for on-disk temporary tables (information_schema
        // reads make them), away from every other process's /tmp files.
        let tmpdir = dir.join("tmp");
        std::fs::create_dir_all(&tmpdir).map_err(|e| format!("{}: {e}", tmpdir.display()))?;
        let mut cmd = Command::new("mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", datadir.join("sock").display()))
            .arg(format!("--pid-file={}", datadir.join("pid").display()))
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .arg("--user=root")
            .arg("--max-allowed-packet=64M")
            .arg("--skip-name-resolve")
            .args(INNODB_FLAGS)
            .arg("--performance-schema=OFF")
            .arg("--local-infile=1")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run mariadbd (apt-get install mariadb-server): {e}"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        let log_since_start = || {
            let text = read_lossy(&log_path);
            text.get(log_start as usize..).unwrap_or(&text).to_string()
        };
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "mariadbd on port {port} exited with {status} before accepting logins; \
                     its log:\n{}",
                    log_since_start()
                ));
            }
            let ready = OptsBuilder::new()
                .ip_or_hostname(Some("127.0.0.1"))
                .tcp_port(port)
                .user(Some("root"))
                .prefer_socket(false)
                .tcp_connect_timeout(Some(Duration::from_secs(1)));
            if let Ok(mut conn) = Conn::new(ready) {
                if conn.query_drop("SELECT 1").is_ok() {
                    return Ok(child);
                }
            }
            if Instant::now() >= deadline {
                let _ = stop_child(&mut child, Duration::from_secs(5));
                return Err(format!(
                    "mariadbd on port {port} did not accept a login within {START_TIMEOUT:?}; \
                     its log:\n{}",
                    log_since_start()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server's process id (of the current run, after [`restart`]).
    ///
    /// [`restart`]: MariaDb::restart
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn root_url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/", self.port)
    }

    pub fn app_url(&self) -> String {
        format!(
            "mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}/{APP_DB}",
            self.port
        )
    }

    /// The server's log (stderr) so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("mariadbd.log"))
    }

    /// A root connection over TCP.
    pub fn root_conn(&self) -> Conn {
        connect(self.port, "root", "", None)
            .unwrap_or_else(|e| panic!("root login on port {}: {e}", self.port))
    }

    /// An `app` connection over TCP, in database `app`.
    pub fn app_conn(&self) -> Conn {
        connect(self.port, APP_USER, APP_PASSWORD, Some(APP_DB))
            .unwrap_or_else(|e| panic!("app login on port {}: {e}", self.port))
    }

    /// An `app` connection, or why not.
    pub fn try_app_conn(&self) -> mysql::Result<Conn> {
        connect(self.port, APP_USER, APP_PASSWORD, Some(APP_DB))
    }

    /// A pool of `app` connections.
    pub fn app_pool(&self) -> mysql::Pool {
        mysql::Pool::new(Opts::from(opts(
            self.port,
            APP_USER,
            APP_PASSWORD,
            Some(APP_DB),
        )))
        .expect("pool")
    }

    /// Runs admin SQL as root (several statements allowed); panics on error.
    pub fn sql(&self, sql: &str) {
        self.root_conn()
            .query_drop(sql)
            .unwrap_or_else(|e| panic!("admin SQL failed on port {}: {e}\n{sql}", self.port));
    }

    /// Runs a query as root and returns its rows.
    pub fn query<T: mysql::prelude::FromRow>(&self, sql: &str) -> Vec<T> {
        self.root_conn()
            .query(sql)
            .unwrap_or_else(|e| panic!("admin query failed on port {}: {e}\n{sql}", self.port))
    }

    /// The target for connecting directly as `app`.
    pub fn target(&self) -> Target {
        Target::new("direct", self.port)
    }

    /// SIGKILL the server and reap it (a crashed backend). [`restart`] brings
    /// it back on the same port and data.
    ///
    /// [`restart`]: MariaDb::restart
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts the server again on the same port and data directory (after
    /// [`kill`](MariaDb::kill) or [`stop`](MariaDb::stop)).
    pub fn restart(&mut self) {
        self.stop();
        // The old listening socket is closed; mariadbd sets SO_REUSEADDR.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match MariaDb::spawn(self.dir.path(), self.port, &self.extra) {
                Ok(child) => {
                    self.pid = child.id();
                    self.child = Some(child);
                    return;
                }
                Err(e) if e.contains("Address already in use") && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("restart: {e}"),
            }
        }
    }

    /// Stops the server cleanly (SIGTERM, bounded wait, SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, STOP_TIMEOUT);
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
        // A failing test shows how its server ended (a crash, a refusal).
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "--- mariadbd on port {} (pid {}), last lines of its log:\n{}",
                self.port,
                self.pid,
                tail.join("\n")
            );
        }
    }
}

// ---------------------------------------------------------------------------
// dbrouter
// ---------------------------------------------------------------------------

/// The real `dbrouter` binary, stopped on drop.
pub struct Dbrouter {
    child: Option<Child>,
    pid: u32,
    port: u16,
    /// The admin HTTP listener, when the config or the command line has one.
    admin: Option<SocketAddr>,
    dir: tempfile::TempDir,
}

impl Dbrouter {
    /// Starts `dbrouter --config FILE` with this TOML; the port is read from
    /// the `listen` key. Panics with the proxy's log if it does not listen.
    pub fn start(config_toml: &str) -> Dbrouter {
        Dbrouter::try_start(config_toml).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`start`](Dbrouter::start), returning the failure instead. If
    /// another process took the `listen` port (or the admin port) between
    /// `free_port()` and the proxy's bind, it retries on fresh ports: use
    /// [`port`](Dbrouter::port) and [`admin_addr`](Dbrouter::admin_addr).
    pub fn try_start(config_toml: &str) -> Result<Dbrouter, String> {
        Dbrouter::try_start_with(config_toml, None)
    }

    /// Like [`start`](Dbrouter::start), with `--admin-listen
    /// 127.0.0.1:PORT` on the command line.
    pub fn start_with_admin_flag(config_toml: &str) -> Dbrouter {
        Dbrouter::try_start_with(config_toml, Some(free_port())).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start_with(config_toml: &str, mut admin_flag: Option<u16>) -> Result<Dbrouter, String> {
        let mut config: toml::Table = config_toml
            .parse()
            .map_err(|e| format!("test config is not TOML: {e}\n{config_toml}"))?;
        let mut last = String::new();
        for _attempt in 0..3 {
            let listen: SocketAddr = config
                .get("proxy")
                .and_then(|p| p.get("listen"))
                .and_then(|l| l.as_str())
                .ok_or("test config lacks proxy.listen")?
                .parse()
                .map_err(|e| format!("proxy.listen: {e}"))?;
            let dir = tempfile::Builder::new()
                .prefix("dbrouter-proxy-")
                .tempdir()
                .map_err(|e| e.to_string())?;
            let path = dir.path().join("dbrouter.toml");
            std::fs::write(&path, toml::to_string(&config).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            let mut args = vec!["--config".to_string(), path.display().to_string()];
            let file_admin = config
                .get("admin")
                .and_then(|a| a.get("listen"))
                .and_then(|l| l.as_str())
                .map(|l| {
                    l.parse::<SocketAddr>()
                        .map_err(|e| format!("admin.listen: {e}"))
                })
                .transpose()?;
            let admin = match admin_flag {
                Some(port) => {
                    args.push("--admin-listen".into());
                    args.push(format!("127.0.0.1:{port}"));
                    Some(SocketAddr::from(([127, 0, 0, 1], port)))
                }
                None => file_admin,
            };
            match Dbrouter::spawn(dir, &args, &[], listen.port()) {
                Err(e) if e.contains("in use") => {
                    last = e;
                    if let Some(proxy) = config.get_mut("proxy").and_then(|p| p.as_table_mut()) {
                        let fresh = format!("127.0.0.1:{}", free_port());
                        proxy.insert("listen".into(), toml::Value::String(fresh));
                    }
                    if let Some(a) = config.get_mut("admin").and_then(|a| a.as_table_mut()) {
                        let fresh = format!("127.0.0.1:{}", free_port());
                        a.insert("listen".into(), toml::Value::String(fresh));
                    }
                    admin_flag = admin_flag.map(|_| free_port());
                }
                Ok(mut proxy) => {
                    proxy.admin = admin;
                    return Ok(proxy);
                }
                other => return other,
            }
        }
        Err(last)
    }

    /// Starts `dbrouter --listen 127.0.0.1:P --backend ADDR` (one shard, the
    /// backend's own accounts, read with the admin account).
    pub fn start_single(backend: &MariaDb) -> Dbrouter {
        Dbrouter::try_start_single(backend.addr()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`start_single`](Dbrouter::start_single), for any backend address.
    pub fn try_start_single(backend: SocketAddr) -> Result<Dbrouter, String> {
        let mut last = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let dir = tempfile::Builder::new()
                .prefix("dbrouter-proxy-")
                .tempdir()
                .map_err(|e| e.to_string())?;
            let args = vec![
                "--listen".to_string(),
                format!("127.0.0.1:{port}"),
                "--backend".to_string(),
                backend.to_string(),
            ];
            let env = [
                ("DBROUTER_ADMIN_USER", ADMIN_USER),
                ("DBROUTER_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ];
            match Dbrouter::spawn(dir, &args, &env, port) {
                Ok(d) => return Ok(d),
                Err(e) if e.contains("in use") => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn spawn(
        dir: tempfile::TempDir,
        args: &[String],
        env: &[(&str, &str)],
        port: u16,
    ) -> Result<Dbrouter, String> {
        let log_path = dir.path().join("dbrouter.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbrouter"));
        cmd.args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run dbrouter: {e}"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "dbrouter {args:?} exited with {status} before listening on {port}; \
                     its log:\n{}",
                    read_lossy(&log_path)
                ));
            }
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return Ok(Dbrouter {
                    pid: child.id(),
                    child: Some(child),
                    port,
                    admin: None,
                    dir,
                });
            }
            if Instant::now() >= deadline {
                let _ = stop_child(&mut child, Duration::from_secs(5));
                return Err(format!(
                    "dbrouter {args:?} did not listen on {port} within {START_TIMEOUT:?}; \
                     its log:\n{}",
                    read_lossy(&log_path)
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The admin HTTP listener's address; panics if the proxy has none.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .expect("this dbrouter was started without an admin listener")
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The proxy's captured stdout and stderr so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("dbrouter.log"))
    }

    /// Sends SIGTERM without waiting.
    pub fn sigterm(&self) {
        if self.child.is_some() {
            send_signal(self.pid, libc::SIGTERM);
        }
    }

    /// Whether the proxy process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits up to `timeout` for the process to exit; `None` if it did not.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = wait_child(self.child.as_mut()?, timeout);
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Asserts the proxy process is alive, showing its log if not.
    pub fn assert_alive(&mut self) {
        if let Some(child) = &mut self.child {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("dbrouter exited with {status}; its log:\n{}", self.log());
            }
        } else {
            panic!("dbrouter was already stopped; its log:\n{}", self.log());
        }
    }

    /// The target for connecting through the proxy as `app`.
    pub fn target(&self) -> Target {
        Target::new("proxy", self.port)
    }
}

impl Drop for Dbrouter {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, STOP_TIMEOUT);
        }
        if thread::panicking() {
            eprintln!(
                "---- dbrouter log (port {}) ----\n{}",
                self.port,
                self.log()
            );
        }
    }
}

/// Writes a dbrouter TOML configuration with one shard.
pub struct ConfigBuilder {
    listen_port: u16,
    backend: SocketAddr,
    users: Vec<String>,
    backend_users: Option<(String, String)>,
    proxy: Vec<(String, String)>,
    pool: Vec<(String, String)>,
    admin_port: Option<u16>,
}

impl ConfigBuilder {
    pub fn new(listen_port: u16, backend: SocketAddr) -> ConfigBuilder {
        ConfigBuilder {
            listen_port,
            backend,
            users: Vec::new(),
            backend_users: None,
            proxy: Vec::new(),
            pool: Vec::new(),
            admin_port: None,
        }
    }

    /// An `[admin]` section listening on a free loopback port (see
    /// [`Dbrouter::admin_addr`]).
    pub fn admin(mut self) -> ConfigBuilder {
        self.admin_port = Some(free_port());
        self
    }

    /// A `[[user]]` the proxy knows, logging in to the backend as itself.
    pub fn user(mut self, name: &str, password: &str) -> ConfigBuilder {
        self.users.push(format!(
            "[[user]]\nname = {}\npassword_hash = {}\n",
            toml_str(name),
            toml_str(&native_password_hash(password))
        ));
        self
    }

    /// A `[[user]]` that logs in to the backend as another account.
    pub fn user_as(
        mut self,
        name: &str,
        password: &str,
        backend_user: &str,
        backend_password: &str,
    ) -> ConfigBuilder {
        self.users.push(format!(
            "[[user]]\nname = {}\npassword_hash = {}\nbackend_user = {}\nbackend_password = {}\n",
            toml_str(name),
            toml_str(&native_password_hash(password)),
            toml_str(backend_user),
            toml_str(backend_password)
        ));
        self
    }

    /// A `[backend_users]` section: accept the backends' own accounts.
    pub fn backend_users(mut self, admin: &str, password: &str) -> ConfigBuilder {
        self.backend_users = Some((admin.to_string(), password.to_string()));
        self
    }

    /// Sets a `[proxy]` key; `value` is a TOML literal: `"4096"`, `"false"`,
    /// or a quoted string (see [`toml_str`]).
    pub fn set(mut self, key: &str, value: &str) -> ConfigBuilder {
        self.proxy.retain(|(k, _)| k != key);
        self.proxy.push((key.to_string(), value.to_string()));
        self
    }

    /// Sets a `[pool]` key (TOML literal, as for [`ConfigBuilder::set`]).
    pub fn pool(mut self, key: &str, value: &str) -> ConfigBuilder {
        self.pool.retain(|(k, _)| k != key);
        self.pool.push((key.to_string(), value.to_string()));
        self
    }

    pub fn build(&self) -> String {
        let mut out = String::new();
        writeln!(out, "[proxy]").unwrap();
        writeln!(
            out,
            "listen = {}",
            toml_str(&format!("127.0.0.1:{}", self.listen_port))
        )
        .unwrap();
        for (k, v) in &self.proxy {
            writeln!(out, "{k} = {v}").unwrap();
        }
        for u in &self.users {
            writeln!(out, "\n{u}").unwrap();
        }
        if !self.pool.is_empty() {
            writeln!(out, "\n[pool]").unwrap();
            for (k, v) in &self.pool {
                writeln!(out, "{k} = {v}").unwrap();
            }
        }
        if let Some((admin, password)) = &self.backend_users {
            writeln!(
                out,
                "\n[backend_users]\nadmin_user = {}\nadmin_password = {}",
                toml_str(admin),
                toml_str(password)
            )
            .unwrap();
        }
        if let Some(port) = self.admin_port {
            let listen = toml_str(&format!("127.0.0.1:{port}"));
            writeln!(out, "\n[admin]\nlisten = {listen}").unwrap();
        }
        writeln!(
            out,
            "\n[[shard]]\nid = 0\nmaster = {}",
            toml_str(&self.backend.to_string())
        )
        .unwrap();
        out
    }
}

/// The usual proxy in front of `db`: the backend's own accounts, read with
/// the admin account (what `dbrouter --listen --backend` does), from a file.
pub fn standard_config(db: &MariaDb) -> ConfigBuilder {
    ConfigBuilder::new(free_port(), db.addr()).backend_users(ADMIN_USER, ADMIN_PASSWORD)
}

/// Starts the usual proxy (see [`standard_config`]) in front of `db`.
pub fn proxy_for(db: &MariaDb) -> Dbrouter {
    Dbrouter::start(&standard_config(db).build())
}

/// Runs `scenario` directly against `db`, then through a fresh proxy in
/// front of it, and asserts both outcomes are equal: a client must not be
/// able to tell the proxy from the server. Returns the outcome and the
/// proxy (still running, for further checks).
///
/// The direct half runs first, so a failure to start the proxy shows that
/// the scenario itself passed against the server.
pub fn direct_then_proxy<T, F>(db: &MariaDb, scenario: F) -> (T, Dbrouter)
where
    T: PartialEq + std::fmt::Debug,
    F: Fn(&Target) -> T,
{
    let direct = scenario(&db.target());
    let proxy = proxy_for(db);
    let via = scenario(&proxy.target());
    assert_eq!(
        direct, via,
        "direct (left) and through dbrouter (right) differ"
    );
    (direct, proxy)
}

// ---------------------------------------------------------------------------
// Targets: run a scenario direct and through the proxy
// ---------------------------------------------------------------------------

/// Where a scenario connects.
#[derive(Clone, Debug)]
pub struct Target {
    /// "direct" or "proxy", for messages.
    pub name: &'static str,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub db: Option<String>,
}

impl Target {
    pub fn new(name: &'static str, port: u16) -> Target {
        Target {
            name,
            port,
            user: APP_USER.to_string(),
            password: APP_PASSWORD.to_string(),
            db: Some(APP_DB.to_string()),
        }
    }

    pub fn with_user(mut self, user: &str, password: &str) -> Target {
        self.user = user.to_string();
        self.password = password.to_string();
        self
    }

    pub fn opts(&self) -> OptsBuilder {
        opts(self.port, &self.user, &self.password, self.db.as_deref())
    }

    pub fn try_conn(&self) -> mysql::Result<Conn> {
        Conn::new(self.opts())
    }

    pub fn conn(&self) -> Conn {
        self.try_conn().unwrap_or_else(|e| {
            panic!(
                "{}: login as {} on port {}: {e}",
                self.name, self.user, self.port
            )
        })
    }
}

// ---------------------------------------------------------------------------
// The mariadb command-line client
// ---------------------------------------------------------------------------

/// Output of one `mariadb` CLI run.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `mariadb --no-defaults -h127.0.0.1 -P<port> --protocol=TCP -u<user>
/// --password=<password> ARGS` with `stdin` on its standard input, bounded in
/// time. Returns (status, stdout, stderr).
pub fn mariadb_cli(
    port: u16,
    user: &str,
    password: &str,
    args: &[&str],
    stdin: &str,
) -> (ExitStatus, String, String) {
    let out = mariadb_cli_output(port, user, password, args, stdin);
    (out.status, out.stdout, out.stderr)
}

pub fn mariadb_cli_output(
    port: u16,
    user: &str,
    password: &str,
    args: &[&str],
    stdin: &str,
) -> CliOutput {
    let mut cmd = Command::new("mariadb");
    cmd.arg("--no-defaults")
        .arg("-h127.0.0.1")
        .arg(format!("-P{port}"))
        .arg("--protocol=TCP")
        .arg(format!("-u{user}"))
        .arg(format!("--password={password}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .expect("cannot run mariadb (apt-get install mariadb-client)");
    let mut child_stdin = child.stdin.take().unwrap();
    let input = stdin.as_bytes().to_vec();
    let writer = thread::spawn(move || {
        let _ = child_stdin.write_all(&input);
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let status = match wait_child(&mut child, CLI_TIMEOUT) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mariadb {args:?} on port {port} did not finish within {CLI_TIMEOUT:?}");
        }
    };
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    CliOutput {
        status,
        stdout,
        stderr,
    }
}

/// Polls `f` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
