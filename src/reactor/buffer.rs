//! A fixed-capacity byte buffer with a read and a write position.
//!
//! Each session owns two: one for the bytes on their way to the backend, one
//! for the bytes on their way to the client. The capacity bounds the memory a
//! session can hold whatever its peers do: when a buffer is full the session
//! stops reading the side that fills it, and TCP flow control pushes back on
//! that peer (backpressure without buffering a reply whole).
//!
//! The storage is taken only when the first byte arrives (a read or a push)
//! and can be given back whenever the buffer holds nothing
//! ([`Buffer::release_if_empty`]): a session between commands holds no
//! buffer memory, so ten thousand idle clients cost kilobytes each, not the
//! 2 x `buffer_size` their buffers can grow to. Given-back storage goes to a
//! bounded list of spare blocks per thread (each reactor is one thread), where
//! the next buffer of the same capacity takes it: a session that releases
//! its buffers after every command and takes them again for the next costs
//! two pushes and two pops on that list, not an allocation and a 64 KiB
//! memset.

use std::cell::RefCell;
use std::io::{self, Read, Write};

/// Bytes of spare storage one thread keeps per buffer capacity. What goes
/// beyond is freed. Enough for the buffers of the sessions a reactor has
/// bytes in flight for at once under load (a session holds a buffer's
/// storage only while bytes are in it), small next to what ten thousand
/// idle sessions would hold if each kept its own.
const SPARE_BYTES: usize = 8 << 20;

/// Released storage, by capacity, for the buffers of this thread.
struct Spare {
    capacity: usize,
    blocks: Vec<Box<[u8]>>,
}

thread_local! {
    static SPARES: RefCell<Vec<Spare>> = const { RefCell::new(Vec::new()) };
}

/// Storage of `capacity` bytes: a spare block if this thread has one (its old
/// bytes are never read: a buffer reads only what it wrote), else a fresh
/// zeroed one (calloc: fresh pages come zeroed from the kernel, untouched).
fn take_block(capacity: usize) -> Box<[u8]> {
    let spare = SPARES
        .try_with(|spares| {
            let mut spares = spares.borrow_mut();
            let list = spares.iter_mut().find(|s| s.capacity == capacity)?;
            list.blocks.pop()
        })
        .ok()
        .flatten();
    spare.unwrap_or_else(|| vec![0; capacity].into_boxed_slice())
}

/// Keeps `block` for the next buffer of its size, or frees it if this thread
/// already keeps `SPARE_BYTES` of that size.
fn give_block(block: Box<[u8]>) {
    let capacity = block.len();
    let limit = (SPARE_BYTES / capacity.max(1)).max(4);
    // While the thread is exiting the list may be gone: the block is freed.
    let _ = SPARES.try_with(|spares| {
        let mut spares = spares.borrow_mut();
        let index = match spares.iter().position(|s| s.capacity == capacity) {
            Some(i) => i,
            None => {
                spares.push(Spare {
                    capacity,
                    blocks: Vec::new(),
                });
                spares.len() - 1
            }
        };
        let list = &mut spares[index].blocks;
        if list.len() < limit {
            list.push(block);
        }
    });
}

/// How many spare blocks of `capacity` bytes this thread keeps (for tests).
#[cfg(test)]
fn spare_blocks(capacity: usize) -> usize {
    SPARES.with(|spares| {
        spares
            .borrow()
            .iter()
            .find(|s| s.capacity == capacity)
            .map_or(0, |s| s.blocks.len())
    })
}

pub struct Buffer {
    /// Empty (no allocation) until the first byte arrives and after
    /// `release_if_empty`; `capacity` bytes otherwise.
    data: Box<[u8]>,
    /// The bound: what `data` holds once taken.
    capacity: usize,
    start: usize,
    end: usize,
}

/// What one read or write on a socket did. I/O outcomes are plain values,
/// not errors, so the session's drive loop reads as a state machine.
#[derive(Debug, PartialEq, Eq)]
pub enum Io {
    /// This many bytes moved: all that was offered (write) or all there was
    /// room for (read); the socket may have more.
    Moved(usize),
    /// Fewer bytes moved than offered: a read found the socket drained, a
    /// write found its send buffer full. Trying again now would only return
    /// `WouldBlock`, and edge-triggered epoll reports when it is worth it, so
    /// the caller skips that syscall.
    Short(usize),
    /// The socket has nothing more for now (or cannot take more).
    WouldBlock,
    /// The peer closed its side.
    Closed,
    /// The buffer has no room (read) or nothing to send (write).
    Nothing,
}

impl Buffer {
    /// A buffer that will hold up to `capacity` bytes; nothing is allocated
    /// until the first byte arrives.
    pub fn new(capacity: usize) -> Buffer {
        Buffer {
            data: Box::default(),
            capacity,
            start: 0,
            end: 0,
        }
    }

    /// The bytes held, oldest first.
    pub fn data(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// The bytes held, for rewriting in place (a statement id, say).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Room left once the held bytes are moved to the front.
    pub fn free(&self) -> usize {
        self.capacity - self.len()
    }

    /// Whether the buffer holds storage now (it has held bytes since it was
    /// made or last released).
    pub fn is_allocated(&self) -> bool {
        !self.data.is_empty()
    }

    /// Gives the storage back if the buffer holds nothing; a no-op
    /// otherwise. The next read or push takes storage again.
    pub fn release_if_empty(&mut self) {
        if self.start == self.end && !self.data.is_empty() {
            give_block(std::mem::take(&mut self.data));
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops `n` bytes from the front (they were sent or used).
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops the `n` bytes held from offset `at`, moving those after them
    /// down (a reply the client must not get, with the start of whatever
    /// follows it kept).
    pub fn remove(&mut self, at: usize, n: usize) {
        debug_assert!(at + n <= self.len());
        let from = self.start + at;
        self.data.copy_within(from + n..self.end, from);
        self.end -= n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Keeps only the first `len` bytes held.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.end = self.start + len;
        }
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Appends bytes made by the proxy. Returns false (and appends nothing)
    /// when they do not fit; proxy-made packets are small, so callers treat
    /// that as a broken invariant of their own state machine.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.free() {
            return false;
        }
        if bytes.is_empty() {
            return true;
        }
        self.allocate();
        self.make_room(bytes.len());
        self.data[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
        true
    }

    /// Reads from `src` into the free space, once.
    pub fn read_from(&mut self, src: &mut impl Read) -> Io {
        if self.free() == 0 {
            return Io::Nothing;
        }
        self.allocate();
        // Compact only when the tail is short: moving bytes is cheap next to
        // a syscall, but not free for a 64 KiB buffer on every read.
        if self.data.len() - self.end < self.data.len() / 4 {
            self.compact();
        }
        let offered = self.data.len() - self.end;
        loop {
            match src.read(&mut self.data[self.end..]) {
                Ok(0) => return Io::Closed,
                Ok(n) => {
                    self.end += n;
                    return if n < offered {
                        Io::Short(n)
                    } else {
                        Io::Moved(n)
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Io::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Io::Closed,
            }
        }
    }

    /// Writes up to `limit` of the held bytes to `dst`, once, and drops what
    /// was written.
    pub fn write_to(&mut self, dst: &mut impl Write, limit: usize) -> Io {
        let n = limit.min(self.len());
        if n == 0 {
            return Io::Nothing;
        }
        loop {
            match dst.write(&self.data[self.start..self.start + n]) {
                Ok(0) => return Io::Closed,
                Ok(written) => {
                    self.consume(written);
                    return if written < n {
                        Io::Short(written)
                    } else {
                        Io::Moved(written)
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Io::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Io::Closed,
            }
        }
    }

    /// Takes the storage if the buffer has none (it is then empty).
    #[inline]
    fn allocate(&mut self) {
        if self.data.is_empty() {
            debug_assert_eq!(self.start, self.end);
            self.data = take_block(self.capacity);
        }
    }

    fn make_room(&mut self, n: usize) {
        if self.data.len() - self.end < n {
            self.compact();
        }
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if !self.data.is_empty() {
            give_block(std::mem::take(&mut self.data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_consume_and_compact_keep_order() {
        let mut b = Buffer::new(8);
        assert!(b.push(b"abcdef"));
        b.consume(4);
        assert!(b.push(b"ghijkl"), "compaction makes room for 6 more");
        assert_eq!(b.data(), b"efghijkl");
        assert!(!b.push(b"x"), "full");
    }

    #[test]
    fn remove_drops_a_middle_stretch() {
        let mut b = Buffer::new(16);
        assert!(b.push(b"xxabcdefgh"));
        b.consume(2);
        b.remove(2, 3);
        assert_eq!(b.data(), b"abfgh");
        b.remove(0, 5);
        assert!(b.is_empty());
        assert!(
            b.push(b"0123456789abcdef"),
            "emptied: the whole capacity is free"
        );
    }

    #[test]
    fn read_stops_when_full_and_reports_closed() {
        let mut b = Buffer::new(4);
        let mut src: &[u8] = b"123456";
        assert_eq!(b.read_from(&mut src), Io::Moved(4));
        assert_eq!(b.read_from(&mut src), Io::Nothing);
        b.consume(4);
        assert_eq!(b.read_from(&mut src), Io::Short(2), "short read: drained");
        assert_eq!(b.read_from(&mut src), Io::Closed);
    }

    #[test]
    fn write_respects_the_limit() {
        let mut b = Buffer::new(8);
        b.push(b"abcdef");
        let mut out = Vec::new();
        assert_eq!(b.write_to(&mut out, 2), Io::Moved(2));
        assert_eq!(out, b"ab");
        assert_eq!(b.data(), b"cdef");
        assert_eq!(b.write_to(&mut out, 0), Io::Nothing);
    }

    // Each test runs on its own thread, so it sees its own spare lists; the
    // odd capacities keep them apart from any other buffer anyway.

    #[test]
    fn nothing_is_allocated_until_the_first_byte() {
        let mut b = Buffer::new(4097);
        assert!(!b.is_allocated());
        assert_eq!((b.len(), b.capacity(), b.free()), (0, 4097, 4097));
        assert_eq!(b.data(), b"");
        assert!(b.push(b""), "an empty push fits");
        assert!(!b.is_allocated(), "and takes nothing");
        let mut out = Vec::new();
        assert_eq!(b.write_to(&mut out, 10), Io::Nothing);
        assert!(
            !b.is_allocated(),
            "writing from an empty buffer takes nothing"
        );
        assert!(b.push(b"a"));
        assert!(b.is_allocated());
    }

    #[test]
    fn release_frees_only_an_empty_buffer() {
        let mut b = Buffer::new(4099);
        b.push(b"abcdef");
        b.release_if_empty();
        assert!(b.is_allocated(), "bytes held: nothing released");
        assert_eq!(b.data(), b"abcdef");
        b.consume(6);
        b.release_if_empty();
        assert!(!b.is_allocated());
        assert_eq!((b.len(), b.free()), (0, 4099));
        assert!(b.push(b"gh"), "usable again after a release");
        assert_eq!(b.data(), b"gh");
    }

    #[test]
    fn released_storage_is_taken_by_the_next_buffer_of_that_size() {
        let mut a = Buffer::new(4103);
        a.push(b"stale bytes");
        let block = a.data.as_ptr();
        a.consume(a.len());
        a.release_if_empty();
        assert_eq!(spare_blocks(4103), 1);
        let mut b = Buffer::new(4103);
        let mut src: &[u8] = b"new";
        assert_eq!(b.read_from(&mut src), Io::Short(3));
        assert_eq!(b.data.as_ptr(), block, "the spare block, not a new one");
        assert_eq!(b.data(), b"new", "nothing of the old bytes shows");
        assert_eq!(spare_blocks(4103), 0);
        let mut c = Buffer::new(4105);
        c.push(b"x");
        assert_ne!(c.data.as_ptr(), block, "another size gets its own block");
    }

    #[test]
    fn the_bound_and_backpressure_hold_across_releases() {
        let mut b = Buffer::new(16);
        let bytes = [7u8; 40];
        let mut src: &[u8] = &bytes;
        for round in 0..2 {
            assert_eq!(b.read_from(&mut src), Io::Moved(16), "round {round}");
            assert_eq!(b.read_from(&mut src), Io::Nothing, "full: reads stop");
            assert!(!b.push(b"x"), "full: pushes refused");
            b.release_if_empty();
            assert!(b.is_allocated(), "full is not empty");
            b.consume(16);
            b.release_if_empty();
            assert!(!b.is_allocated());
        }
        assert_eq!(b.read_from(&mut src), Io::Short(8));
    }

    #[test]
    fn dropped_storage_is_kept_up_to_the_spare_limit() {
        const CAP: usize = 1 << 20;
        let limit = SPARE_BYTES / CAP;
        let buffers: Vec<Buffer> = (0..limit + 3)
            .map(|_| {
                let mut b = Buffer::new(CAP);
                b.push(b"x");
                b
            })
            .collect();
        assert_eq!(spare_blocks(CAP), 0);
        drop(buffers);
        assert_eq!(spare_blocks(CAP), limit, "the rest was freed");
        let never_used = Buffer::new(CAP);
        drop(never_used);
        assert_eq!(spare_blocks(CAP), limit);
    }
}
