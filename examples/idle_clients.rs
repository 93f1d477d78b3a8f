//! Opens N client connections, logs each in, runs `SELECT 1` once on each,
//! then holds them all open, idle, until killed: the load of
//! `perf/idle_connections.sh`, which reads the proxy's resident memory
//! before and after.
//!
//! ```sh
//! cargo run --release --example idle_clients -- --port 3307 --user app \
//!     --password pw -n 10000 --concurrency 32
//! ```
//!
//! Prints `held N` on stdout once every connection is open and idle (the
//! script waits for that line), progress on stderr. Exits with status 1,
//! without holding anything, if any connection fails.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long)]
    port: u16,
    #[arg(long)]
    user: String,
    #[arg(long, default_value = "")]
    password: String,
    #[arg(long)]
    db: Option<String>,
    /// Connections to open and hold.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    connections: usize,
    /// Connections being opened at the same time.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

fn main() {
    let args = Args::parse();
    let opts = OptsBuilder::new()
        .ip_or_hostname(Some(args.host.clone()))
        .tcp_port(args.port)
        .user(Some(args.user.clone()))
        .pass(Some(args.password.clone()))
        .db_name(args.db.clone())
        .prefer_socket(false)
        .tcp_connect_timeout(Some(Duration::from_secs(30)));
    let next = Arc::new(AtomicUsize::new(0));
    let held = Arc::new(Mutex::new(Vec::with_capacity(args.connections)));
    let failures = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (opts, next, held, failures) =
                (opts.clone(), next.clone(), held.clone(), failures.clone());
            let total = args.connections;
            std::thread::spawn(move || {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let opened = Conn::new(opts.clone()).and_then(|mut conn| {
                        let one: Option<u8> = conn.query_first("SELECT 1")?;
                        assert_eq!(one, Some(1), "SELECT 1 answered {one:?}");
                        Ok(conn)
                    });
                    match opened {
                        Ok(conn) => {
                            let mut held = held.lock().unwrap();
                            held.push(conn);
                            if held.len() % 1000 == 0 {
                                eprintln!("idle_clients: {} open", held.len());
                            }
                        }
                        Err(e) => {
                            if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("idle_clients: connection failed: {e}");
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker panicked");
    }
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!(
            "idle_clients: {failed} of {} connections failed",
            args.connections
        );
        std::process::exit(1);
    }
    let count = held.lock().unwrap().len();
    eprintln!(
        "idle_clients: {count} connections open and idle after {:.1} s; holding until killed",
        started.elapsed().as_secs_f64()
    );
    println!("held {count}");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
