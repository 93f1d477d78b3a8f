//! Deadlines for one reactor. mio has no timers, so the reactor keeps a heap
//! of (instant, session, generation) and sleeps in `poll` until the earliest.
//! Every deadline gets a generation unique in the reactor; a session keeps
//! the generation of its one live deadline, so stale heap entries (re-armed,
//! cleared, or left by a closed session whose slab key was reused) are
//! skipped instead of searched for and removed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    last_generation: u64,
}

impl Timers {
    /// Arms a deadline for `session`; returns its generation.
    pub fn schedule(&mut self, at: Instant, session: usize) -> u64 {
        self.last_generation += 1;
        self.heap.push(Reverse((at, session, self.last_generation)));
        self.last_generation
    }

    /// How long `poll` may sleep: until the earliest deadline.
    pub fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, _, _))| at.saturating_duration_since(now))
    }

    /// Pops one deadline that has passed, if any.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(usize, u64)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                let Reverse((_, session, generation)) = self.heap.pop()?;
                Some((session, generation))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_come_out_earliest_first() {
        let now = Instant::now();
        let mut t = Timers::default();
        let g2 = t.schedule(now + Duration::from_secs(2), 2);
        let g1 = t.schedule(now + Duration::from_secs(1), 1);
        assert_ne!(g1, g2, "generations are unique across sessions");
        assert_eq!(t.poll_timeout(now), Some(Duration::from_secs(1)));
        assert_eq!(t.pop_expired(now), None);
        let later = now + Duration::from_secs(3);
        assert_eq!(t.pop_expired(later), Some((1, g1)));
        assert_eq!(t.pop_expired(later), Some((2, g2)));
        assert_eq!(t.pop_expired(later), None);
    }
}
