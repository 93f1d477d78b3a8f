//! A small deterministic generator (xorshift64) for unit tests that try
//! many varied inputs: a failing case replays from its seed.

pub(crate) struct XorShift(u64);

impl XorShift {
    /// `seed` must not be 0 (xorshift would stay at 0).
    pub(crate) fn new(seed: u64) -> XorShift {
        XorShift(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
