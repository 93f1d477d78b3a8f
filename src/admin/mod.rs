//! The admin plane: an HTTP listener on its own thread (`dbrouter-admin`),
//! serving `GET /metrics` (`metrics.rs`) to Prometheus.
//!
//! It is off the data path: it reads the reactors' counters (atomics that
//! each reactor owns) and never takes a lock a reactor takes, so a scrape
//! cannot slow a query. Its own loop is a small mio poll: the listener, a
//! `Waker` to stop it, and the connections, each a one-request exchange
//! (`http.rs`) with a deadline. A slow or silent client holds only its own
//! exchange, never the others, and is cut off at `EXCHANGE_TIMEOUT`.
//!
//! ```text
//!  accepted --request head whole--> Answering --all written--> Lingering --EOF--> closed
//!     |  (read, parse)                  (write)                (shut down writes, read
//!     |                                                          and drop what is left)
//!     +--- EOF, error, or the deadline, in any state -------------------------> closed
//! ```
//!
//! Lingering keeps the socket open until the client closes: closing a
//! socket with unread bytes in it (a client that sent more than its head)
//! would reset the connection and could lose the answer on the way.

pub mod http;
pub mod metrics;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use http::{Request, Route};
use metrics::Metrics;

/// How long one connection may take, from accept to close.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed as they come.
const MAX_EXCHANGES: usize = 64;
const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);

/// The running admin listener, as seen from the main thread.
pub struct AdminHandle {
    /// The address it listens on (the configured one, with the port the
    /// kernel chose if that was 0).
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: JoinHandle<()>,
}

impl AdminHandle {
    /// Stops the listener (open exchanges are dropped) and joins its thread.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        if self.waker.wake().is_ok() {
            let _ = self.thread.join();
        }
        // Without a wake-up the thread cannot be told; it is not joined,
        // and the process exits without it.
    }
}

/// Binds `addr` and starts the admin thread. Binding happens here, so a
/// port in use is an error at startup.
pub fn spawn(addr: SocketAddr, metrics: Metrics) -> io::Result<AdminHandle> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let mut listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let stop = Arc::new(AtomicBool::new(false));
    let server = Server {
        poll,
        listener,
        exchanges: Slab::new(),
        metrics,
        stop: stop.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("dbrouter-admin".into())
        .spawn(move || server.run())?;
    log::info!("admin listening on http://{addr}/metrics");
    Ok(AdminHandle {
        addr,
        stop,
        waker,
        thread,
    })
}

struct Server {
    poll: Poll,
    listener: TcpListener,
    exchanges: Slab<Exchange>,
    metrics: Metrics,
    stop: Arc<AtomicBool>,
}

/// One connection: one request, one answer.
struct Exchange {
    stream: TcpStream,
    deadline: Instant,
    phase: Phase,
}

enum Phase {
    /// Reading the request head.
    Reading(Vec<u8>),
    /// Writing the answer; `usize` bytes are written.
    Answering(Vec<u8>, usize),
    /// Answer written and writes shut down: waiting for the client's EOF.
    Lingering,
}

/// What to do with an exchange after it moved.
enum Next {
    Wait,
    Close,
}

impl Server {
    fn run(mut self) {
        let mut events = Events::with_capacity(128);
        while !self.stop.load(Ordering::Acquire) {
            let timeout = self
                .exchanges
                .iter()
                .map(|(_, e)| e.deadline)
                .min()
                .map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("admin: poll failed: {e}; the admin listener stops");
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {} // the loop condition reads `stop`
                    Token(key) => self.drive(key),
                }
            }
            let now = Instant::now();
            let expired: Vec<usize> = self
                .exchanges
                .iter()
                .filter(|(_, e)| e.deadline <= now)
                .map(|(k, _)| k)
                .collect();
            for key in expired {
                log::debug!("admin: connection {key} timed out");
                self.close(key);
            }
        }
        log::debug!("admin: stopped");
    }

    fn accept(&mut self) {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("admin: accept failed: {e}");
                    return;
                }
            };
            if self.exchanges.len() >= MAX_EXCHANGES {
                log::warn!("admin: {MAX_EXCHANGES} connections open; closing the one from {peer}");
                continue; // dropped: closed
            }
            let entry = self.exchanges.vacant_entry();
            let key = entry.key();
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut stream, Token(key), interest)
            {
                log::warn!("admin: cannot register a connection: {e}");
                continue;
            }
            entry.insert(Exchange {
                stream,
                deadline: Instant::now() + EXCHANGE_TIMEOUT,
                phase: Phase::Reading(Vec::new()),
            });
            // Its first event comes from the poll (edge-triggered
            // registration reports what is ready already).
        }
    }

    fn drive(&mut self, key: usize) {
        let Some(exchange) = self.exchanges.get_mut(key) else {
            return; // a stale event for a closed connection
        };
        if let Next::Close = exchange.drive(&self.metrics) {
            self.close(key);
        }
    }

    fn close(&mut self, key: usize) {
        if self.exchanges.contains(key) {
            let mut exchange = self.exchanges.remove(key);
            let _ = self.poll.registry().deregister(&mut exchange.stream);
        }
    }
}

impl Exchange {
    /// Moves everything that can move now (events are edge-triggered, so
    /// each step goes on until the socket would block).
    fn drive(&mut self, metrics: &Metrics) -> Next {
        loop {
            match &mut self.phase {
                Phase::Reading(request) => {
                    let mut chunk = [0u8; 2048];
                    match self.stream.read(&mut chunk) {
                        Ok(0) => return Next::Close, // left before asking
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Wait,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => return Next::Close,
                    }
                    let parsed = http::parse(request);
                    let answer = match &parsed {
                        Request::Partial => continue,
                        Request::Route(Route::Metrics) => {
                            http::response(200, "OK", metrics::CONTENT_TYPE, &metrics.render())
                        }
                        refused => {
                            log::debug!("admin: refused a request: {refused:?}");
                            http::refusal(refused).unwrap_or_default()
                        }
                    };
                    self.phase = Phase::Answering(answer, 0);
                }
                Phase::Answering(answer, written) => {
                    if *written == answer.len() {
                        let _ = self.stream.shutdown(Shutdown::Write);
                        self.phase = Phase::Lingering;
                        continue;
                    }
                    match self.stream.write(&answer[*written..]) {
                        Ok(0) => return Next::Close,
                        Ok(n) => *written += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Wait,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => return Next::Close,
                    }
                }
                Phase::Lingering => {
                    let mut sink = [0u8; 2048];
                    match self.stream.read(&mut sink) {
                        Ok(0) => return Next::Close,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Wait,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return Next::Close,
                    }
                }
            }
        }
    }
}
