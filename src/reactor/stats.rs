//! What the reactors count for the metrics (`admin::metrics` exports it).
//!
//! Each reactor has its own `ReactorStats`, written only by that reactor
//! with relaxed atomic adds and read by the admin thread, which sums them at
//! each scrape. Keeping one block per reactor (each on its own cache lines)
//! means no two cores ever write the same line: a counter costs a reactor
//! one uncontended add, and a gauge that goes up and down on one thread
//! never reads below zero, whatever order the scrape sees the others in.
//!
//! Nothing here is ordered with anything else: a scrape sees each number as
//! it was at some moment during the scrape, which is all Prometheus asks.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use super::session::{PinChange, PinReason};

/// One reactor's counters and gauges.
#[repr(align(128))] // its own cache lines (two, for the adjacent-line prefetcher)
pub struct ReactorStats {
    /// Client connections accepted.
    pub clients_accepted: AtomicU64,
    /// Client connections open now. The one counter another reactor
    /// writes too: it raises it when it hands this reactor a client
    /// (`balance.rs`), once per such connection.
    pub clients_open: AtomicI64,
    /// Client commands read (one per command packet, whatever it is).
    pub commands: AtomicU64,
    /// Pins started, by `PinReason::index` (transaction mode).
    pub pins_started: [AtomicU64; PinReason::ALL.len()],
    /// Sessions holding each pin reason now (transaction mode).
    pub pinned: [AtomicI64; PinReason::ALL.len()],
    /// By shard index, as in the topology.
    shards: Box<[ShardStats]>,
}

/// One reactor's counts for one shard.
#[derive(Default)]
#[repr(align(128))]
pub struct ShardStats {
    /// Backend connections open (connecting, logged in, lent or idle).
    pub backend_connections: AtomicI64,
    /// Sessions queued for a pooled connection.
    pub pool_waiting: AtomicI64,
    /// Statements answered with ERR 1040: the pool was in use and the queue
    /// full, or the wait timed out.
    pub pool_exhausted: AtomicU64,
}

impl ReactorStats {
    pub fn new(shards: usize) -> ReactorStats {
        ReactorStats {
            clients_accepted: AtomicU64::new(0),
            clients_open: AtomicI64::new(0),
            commands: AtomicU64::new(0),
            pins_started: Default::default(),
            pinned: Default::default(),
            shards: (0..shards).map(|_| ShardStats::default()).collect(),
        }
    }

    /// Shard index `index`'s counts; `None` past the shards counted at
    /// start (a later topology may have more).
    pub fn shard(&self, index: usize) -> Option<&ShardStats> {
        self.shards.get(index)
    }

    pub fn shards(&self) -> &[ShardStats] {
        &self.shards
    }

    /// A session's pins changed: the started ones count and join the
    /// gauge, the ended ones leave it.
    pub fn record_pins(&self, change: PinChange) {
        if change.is_empty() {
            return;
        }
        for reason in PinReason::ALL {
            let i = reason.index();
            if change.started(reason) {
                self.pins_started[i].fetch_add(1, Ordering::Relaxed);
                self.pinned[i].fetch_add(1, Ordering::Relaxed);
            }
            if change.ended(reason) {
                self.pinned[i].fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts one backend connection of shard index `shard` until the
    /// returned guard is dropped (with the connection's socket).
    pub fn backend_opened(self: &Arc<Self>, shard: usize) -> BackendCount {
        if let Some(s) = self.shard(shard) {
            s.backend_connections.fetch_add(1, Ordering::Relaxed);
        }
        BackendCount {
            stats: self.clone(),
            shard,
        }
    }
}

/// Held by a backend connection: it is counted in
/// `ShardStats::backend_connections` while this lives. Whatever path closes
/// the connection (the session, the pool, a failure), dropping it uncounts it.
pub struct BackendCount {
    stats: Arc<ReactorStats>,
    shard: usize,
}

impl Drop for BackendCount {
    fn drop(&mut self) {
        if let Some(s) = self.stats.shard(self.shard) {
            s.backend_connections.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Sums of every reactor's numbers, as a scrape reads them.
pub fn sum_u64<'a>(
    reactors: impl IntoIterator<Item = &'a Arc<ReactorStats>>,
    f: impl Fn(&ReactorStats) -> &AtomicU64,
) -> u64 {
    reactors
        .into_iter()
        .map(|r| f(r).load(Ordering::Relaxed))
        .fold(0, u64::wrapping_add)
}

/// See `sum_u64`.
pub fn sum_i64<'a>(
    reactors: impl IntoIterator<Item = &'a Arc<ReactorStats>>,
    f: impl Fn(&ReactorStats) -> &AtomicI64,
) -> i64 {
    reactors
        .into_iter()
        .map(|r| f(r).load(Ordering::Relaxed))
        .fold(0, i64::wrapping_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_count_lives_as_long_as_its_guard() {
        let stats = Arc::new(ReactorStats::new(2));
        let a = stats.backend_opened(1);
        let b = stats.backend_opened(1);
        let beyond = stats.backend_opened(5); // not counted, not a panic
        let count = |s: &ReactorStats| {
            s.shards()
                .iter()
                .map(|s| s.backend_connections.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        };
        assert_eq!(count(&stats), [0, 2]);
        drop(a);
        drop(beyond);
        assert_eq!(count(&stats), [0, 1]);
        drop(b);
        assert_eq!(count(&stats), [0, 0]);
    }

    #[test]
    fn sums_cover_every_reactor() {
        let reactors: Vec<_> = (0..3).map(|_| Arc::new(ReactorStats::new(1))).collect();
        for (i, r) in reactors.iter().enumerate() {
            r.commands.fetch_add(i as u64 + 1, Ordering::Relaxed);
            r.clients_open.fetch_add(1, Ordering::Relaxed);
        }
        assert_eq!(sum_u64(&reactors, |r| &r.commands), 6);
        assert_eq!(sum_i64(&reactors, |r| &r.clients_open), 3);
    }
}
