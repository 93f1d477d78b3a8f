//! A session's prepared statements.
//!
//! Clients see ids the proxy gives out; each statement is prepared on the
//! backends it runs on, lazily, and the ids in COM_STMT_* packets are
//! rewritten in place (same length) on the way to a backend. Two backends
//! may hand out the same id for different statements, so passing theirs
//! through would let a client run the wrong statement on the wrong shard.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use smallvec::SmallVec;

/// Where executions of a statement go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StmtRoute {
    /// Always this shard: its text binds the key to literals (or there is
    /// one shard).
    Fixed(usize),
    /// Names no sharded table: wherever the session is (its transaction's
    /// shard, or the backend it used last).
    LastUsed,
    /// Its key is a `?`: each COM_STMT_EXECUTE is routed by its parameters.
    PerExecute,
}

#[derive(Debug)]
pub struct Prepared {
    /// The statement text, to prepare it on another shard (or, pooled, on
    /// another connection).
    pub sql: Arc<[u8]>,
    /// A hash of `sql`, to find it in a connection's statement cache.
    pub hash: u64,
    pub route: StmtRoute,
    pub num_params: u16,
    /// The backends that have it. An entry from an older epoch of its
    /// shard is of a connection since closed or given back: dead.
    on: SmallVec<[Placement; 2]>,
    /// Parameter types from the last COM_STMT_EXECUTE that sent them
    /// (2 bytes per parameter), for executes that do not.
    pub types: Option<Box<[u8]>>,
    /// The shard of the last execution (cursors and fetches live there).
    pub last_shard: Option<usize>,
    /// COM_STMT_SEND_LONG_DATA came for a statement routed per execute: the
    /// proxy could not know where to send it, so the next execute is refused.
    pub long_data_refused: bool,
    /// Under MariaDB's metadata caching, the fingerprint of the column
    /// definitions the client holds (the last it received, from any shard).
    metadata: Option<u64>,
}

/// A statement prepared on a shard's backend connection.
#[derive(Debug, Clone, Copy)]
struct Placement {
    shard: usize,
    /// The backend's statement id.
    id: u32,
    /// The shard's epoch (`Statements::epoch`) when it was prepared there.
    epoch: u64,
    /// That backend has received `Prepared::types` (an execute without
    /// types may only go where the server already has them).
    types_sent: bool,
    /// The fingerprint of the column definitions that backend last sent
    /// for it, to the client or to the proxy (metadata caching: it leaves
    /// them out of an execute while they have not changed since).
    metadata: Option<u64>,
}

impl Prepared {
    fn live(&self, shard: usize, epoch: u64) -> Option<&Placement> {
        self.on
            .iter()
            .find(|p| p.shard == shard && p.epoch == epoch)
    }

    /// The backend id of this statement on `shard` (whose epoch is now
    /// `epoch`), if prepared there.
    pub fn backend_id(&self, shard: usize, epoch: u64) -> Option<u32> {
        self.live(shard, epoch).map(|p| p.id)
    }

    /// Prepared on `shard` (epoch `epoch`) as backend statement `id`.
    pub fn place(&mut self, shard: usize, id: u32, epoch: u64) {
        self.on.retain(|p| p.shard != shard);
        self.on.push(Placement {
            shard,
            id,
            epoch,
            types_sent: false,
            metadata: None,
        });
    }

    /// The backend on `shard` sent column definitions with fingerprint
    /// `metadata` to the proxy (a prepare the proxy made there).
    pub fn metadata_sent(&mut self, shard: usize, epoch: u64, metadata: u64) {
        if let Some(p) = self.live_mut(shard, epoch) {
            p.metadata = Some(metadata);
        }
    }

    /// The client received column definitions with fingerprint `metadata`
    /// from the backend on `shard`.
    pub fn metadata_received(&mut self, shard: usize, epoch: u64, metadata: u64) {
        self.metadata = Some(metadata);
        self.metadata_sent(shard, epoch, metadata);
    }

    /// Whether the column definitions the client holds may not be those
    /// the backend on `shard` last sent: then an execute there must not
    /// reach the client without them.
    pub fn client_metadata_may_differ(&self, shard: usize, epoch: u64) -> bool {
        self.live(shard, epoch)
            .is_none_or(|p| p.metadata != self.metadata)
    }

    fn live_mut(&mut self, shard: usize, epoch: u64) -> Option<&mut Placement> {
        self.on
            .iter_mut()
            .find(|p| p.shard == shard && p.epoch == epoch)
    }

    /// Whether `shard`'s backend has received the parameter types.
    pub fn types_on(&self, shard: usize, epoch: u64) -> bool {
        self.live(shard, epoch).is_some_and(|p| p.types_sent)
    }

    pub fn types_sent_to(&mut self, shard: usize, epoch: u64) {
        if let Some(p) = self.live_mut(shard, epoch) {
            p.types_sent = true;
        }
    }

    /// A new binding: every backend must get the types anew.
    pub fn forget_types(&mut self) {
        for p in &mut self.on {
            p.types_sent = false;
        }
    }

    /// (shard, backend id) of every live placement (see `Statements::remove`).
    pub fn placements(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.on.iter().map(|p| (p.shard, p.id))
    }
}

/// The statements of one session, by client-visible id.
#[derive(Debug, Default)]
pub struct Statements {
    /// foldhash, not SipHash: the ids are the proxy's own (sequential, never
    /// chosen by the client), and each execute looks its statement up.
    by_id: foldhash::HashMap<u32, Prepared>,
    last_id: u32,
    /// Per shard, how many times its connection went away (closed, or
    /// given back to the pool): forgetting every statement placed there is
    /// one increment, not a walk over all of them on every release.
    epochs: Vec<u64>,
}

impl Statements {
    /// Registers a statement being prepared; returns its client-visible id.
    pub fn add(&mut self, sql: &[u8], route: StmtRoute) -> u32 {
        // Ids start at 1 (0 is never valid) and are never reused within a
        // session, as on the server.
        self.last_id = self.last_id.wrapping_add(1).max(1);
        self.by_id.insert(
            self.last_id,
            Prepared {
                sql: sql.into(),
                hash: text_hash(sql),
                route,
                num_params: 0,
                on: SmallVec::new(),
                types: None,
                last_shard: None,
                long_data_refused: false,
                metadata: None,
            },
        );
        self.last_id
    }

    pub fn get(&self, id: u32) -> Option<&Prepared> {
        self.by_id.get(&id)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut Prepared> {
        self.by_id.get_mut(&id)
    }

    /// Removes a statement; the one returned keeps only its live
    /// placements (the backends that still have it).
    pub fn remove(&mut self, id: u32) -> Option<Prepared> {
        let mut stmt = self.by_id.remove(&id)?;
        stmt.on.retain(|p| p.epoch == self.epoch(p.shard));
        Some(stmt)
    }

    /// The current epoch of `shard` (see `epochs`).
    pub fn epoch(&self, shard: usize) -> u64 {
        self.epochs.get(shard).copied().unwrap_or(0)
    }

    /// Forgets every statement (COM_RESET_CONNECTION, COM_CHANGE_USER: the
    /// server drops them too).
    pub fn clear(&mut self) {
        self.by_id.clear();
    }

    /// Forgets that statements are prepared on `shard` (its connection was
    /// closed; they are prepared again when needed).
    pub fn forget_shard(&mut self, shard: usize) {
        if self.epochs.len() <= shard {
            self.epochs.resize(shard + 1, 0);
        }
        self.epochs[shard] += 1;
    }

    /// Forgets backend statement `id` on `shard` (its connection's cache
    /// closed it to make room).
    pub fn forget_backend_id(&mut self, shard: usize, id: u32) {
        for p in self.by_id.values_mut() {
            p.on.retain(|e| (e.shard, e.id) != (shard, id));
        }
    }
}

/// The hash statement caches are keyed by: the same on every reactor and
/// run (fixed keys), so equal texts from different sessions meet.
pub fn text_hash(sql: &[u8]) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(sql)
}

/// Rewrites the statement id of a COM_STMT_* payload in place.
pub fn set_statement_id(payload: &mut [u8], id: u32) {
    if let Some(bytes) = payload.get_mut(1..5) {
        bytes.copy_from_slice(&id.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_zero_and_not_reused() {
        let mut s = Statements::default();
        let a = s.add(b"SELECT 1", StmtRoute::LastUsed);
        s.remove(a);
        let b = s.add(b"SELECT 2", StmtRoute::LastUsed);
        assert!(a != 0 && b != 0 && a != b);
    }

    #[test]
    fn backend_ids_per_shard() {
        let mut s = Statements::default();
        let id = s.add(b"SELECT ?", StmtRoute::PerExecute);
        let epoch = s.epoch(2);
        let p = s.get_mut(id).unwrap();
        p.place(2, 7, epoch);
        p.types_sent_to(2, epoch);
        assert_eq!(p.backend_id(2, epoch), Some(7));
        assert!(p.types_on(2, epoch));
        assert_eq!(p.backend_id(0, epoch), None);
        s.forget_shard(2);
        let (p, epoch) = (s.get(id).unwrap(), s.epoch(2));
        assert_eq!(p.backend_id(2, epoch), None);
        assert!(!p.types_on(2, epoch));
        // Placed again on the new connection; removed, only that one is
        // left to close.
        s.get_mut(id).unwrap().place(2, 9, epoch);
        let removed = s.remove(id).unwrap();
        assert_eq!(removed.placements().collect::<Vec<_>>(), [(2, 9)]);
    }

    #[test]
    fn client_metadata_follows_what_each_backend_sent() {
        let mut s = Statements::default();
        let id = s.add(b"SELECT * FROM t WHERE k = ?", StmtRoute::PerExecute);
        let epoch = s.epoch(0);
        let p = s.get_mut(id).unwrap();
        // The client's prepare went to shard 0: both hold its definitions.
        p.place(0, 5, epoch);
        p.metadata_received(0, epoch, 11);
        assert!(!p.client_metadata_may_differ(0, epoch));
        // Not prepared on shard 1 yet: nothing is known there.
        assert!(p.client_metadata_may_differ(1, epoch));
        // The proxy prepares it on shard 1, which has the same columns.
        p.place(1, 8, epoch);
        p.metadata_sent(1, epoch, 11);
        assert!(!p.client_metadata_may_differ(1, epoch));
        // Shard 0's columns change and it sends them: the client holds the
        // new ones, shard 1 sent the old ones last.
        p.metadata_received(0, epoch, 12);
        assert!(!p.client_metadata_may_differ(0, epoch));
        assert!(p.client_metadata_may_differ(1, epoch));
    }

    #[test]
    fn dead_placements_are_not_closed() {
        let mut s = Statements::default();
        let id = s.add(b"SELECT ?", StmtRoute::PerExecute);
        let epoch = s.epoch(1);
        s.get_mut(id).unwrap().place(1, 3, epoch);
        s.forget_shard(1);
        let removed = s.remove(id).unwrap();
        assert_eq!(removed.placements().count(), 0);
    }

    #[test]
    fn ids_in_payloads() {
        let mut p = vec![0x17, 1, 0, 0, 0, 0];
        set_statement_id(&mut p, 0x0102_0304);
        assert_eq!(p, [0x17, 4, 3, 2, 1, 0]);
        let mut short = [0x17, 1];
        set_statement_id(&mut short, 9);
        assert_eq!(short, [0x17, 1], "too short: left alone");
    }
}
