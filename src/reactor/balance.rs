//! Spreading client connections evenly over the reactors.
//!
//! Each reactor accepts on its own SO_REUSEPORT listener, and the kernel
//! picks the listener by a hash of the connection's addresses, not by load:
//! 64 connections of one benchmark were seen split 39/25 over two reactors,
//! and with long-lived (pooled) application connections such a split lasts.
//! With reactors pinned to cores, the busier core then sets the pace.
//!
//! So a reactor that accepts a client while it holds two or more sessions
//! more than the least loaded reactor hands the socket over: through that
//! reactor's channel, followed by a wake-up. This costs a cross-thread
//! message once per connection, never per query. The load is each reactor's
//! open-clients gauge (`ReactorStats::clients_open`), which the sender
//! raises for the receiver when it hands a client over, so two reactors
//! accepting at once do not both pick the same one as least loaded.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpStream;
use mio::Waker;

use super::stats::ReactorStats;

/// How many sessions more than the least loaded reactor a reactor may hold
/// before it hands new clients over.
const SLACK: i64 = 1;

/// A client connection accepted by one reactor for another.
pub struct Handoff {
    pub stream: TcpStream,
    pub peer: SocketAddr,
}

/// What each reactor knows of the others.
pub struct Peers {
    inboxes: Vec<Sender<Handoff>>,
    wakers: Vec<Arc<Waker>>,
    stats: Box<[Arc<ReactorStats>]>,
}

impl Peers {
    /// `wakers[i]` wakes reactor `i`, whose handoffs go to `inboxes[i]` and
    /// whose load is `stats[i]`.
    pub fn new(
        inboxes: Vec<Sender<Handoff>>,
        wakers: Vec<Arc<Waker>>,
        stats: Box<[Arc<ReactorStats>]>,
    ) -> Peers {
        Peers {
            inboxes,
            wakers,
            stats,
        }
    }

    /// One inbox per reactor.
    pub fn channels(reactors: usize) -> (Vec<Sender<Handoff>>, Vec<Receiver<Handoff>>) {
        (0..reactors)
            .map(|_| crossbeam_channel::unbounded())
            .unzip()
    }

    /// Reactor `me` accepted a client: the reactor that should serve it.
    /// When that is another one, its load is already raised for it.
    pub fn choose(&self, me: usize) -> usize {
        let load = |i: usize| {
            self.stats
                .get(i)
                .map_or(i64::MAX, |s| s.clients_open.load(Ordering::Relaxed))
        };
        let mine = load(me);
        let Some((least, lightest)) = (0..self.inboxes.len())
            .map(|i| (i, load(i)))
            .min_by_key(|&(_, l)| l)
        else {
            return me;
        };
        if least == me || mine <= lightest + SLACK {
            return me;
        }
        if let Some(s) = self.stats.get(least) {
            s.clients_open.fetch_add(1, Ordering::Relaxed);
        }
        least
    }

    /// Sends a client to reactor `to` (chosen by `choose`) and wakes it.
    /// Gives the client back if that reactor is gone (it stopped), with
    /// its load lowered again.
    pub fn hand(&self, to: usize, client: Handoff) -> Result<(), Handoff> {
        let sent = match self.inboxes.get(to) {
            Some(inbox) => inbox.send(client).map_err(|e| e.into_inner()),
            None => Err(client),
        };
        match sent {
            Ok(()) => {
                if let Some(waker) = self.wakers.get(to) {
                    let _ = waker.wake();
                }
                Ok(())
            }
            Err(client) => {
                if let Some(s) = self.stats.get(to) {
                    s.clients_open.fetch_sub(1, Ordering::Relaxed);
                }
                Err(client)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(loads: &[i64]) -> Peers {
        let stats: Box<[Arc<ReactorStats>]> = loads
            .iter()
            .map(|&l| {
                let s = ReactorStats::new(1);
                s.clients_open.store(l, Ordering::Relaxed);
                Arc::new(s)
            })
            .collect();
        let (inboxes, _) = Peers::channels(loads.len());
        Peers::new(inboxes, Vec::new(), stats)
    }

    #[test]
    fn a_client_stays_unless_its_reactor_holds_more_than_the_slack() {
        assert_eq!(peers(&[0, 0]).choose(0), 0);
        assert_eq!(peers(&[1, 0]).choose(0), 0);
        assert_eq!(peers(&[2, 1]).choose(0), 0);
        assert_eq!(peers(&[2, 0]).choose(0), 1);
        assert_eq!(peers(&[5, 3, 4]).choose(0), 1);
        assert_eq!(peers(&[7]).choose(0), 0);
    }

    #[test]
    fn the_chosen_reactor_is_counted_at_once() {
        let p = peers(&[4, 0]);
        // Clients accepted at once by reactor 0: each sees the ones
        // before it already counted on reactor 1.
        let chosen: Vec<usize> = (0..4).map(|_| p.choose(0)).collect();
        assert_eq!(chosen, [1, 1, 1, 0]);
        assert_eq!(p.stats[1].clients_open.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn accepting_many_ends_even() {
        // Reactor 0 accepts every client (the worst a hash can do).
        let p = peers(&[0, 0]);
        for _ in 0..64 {
            let to = p.choose(0);
            if to == 0 {
                p.stats[0].clients_open.fetch_add(1, Ordering::Relaxed);
            }
        }
        let loads: Vec<i64> = p
            .stats
            .iter()
            .map(|s| s.clients_open.load(Ordering::Relaxed))
            .collect();
        assert_eq!(loads.iter().sum::<i64>(), 64);
        assert!((loads[0] - loads[1]).abs() <= 2, "{loads:?}");
    }
}
