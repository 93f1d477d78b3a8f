//! A fixed-capacity byte buffer with a read and a write position.
//!
//! Each session owns two: one for the bytes on their way to the backend, one
//! for the bytes on their way to the client. The capacity bounds the memory a
//! session can hold whatever its peers do: when a buffer is full the session
//! stops reading the side that fills it, and TCP flow control pushes back on
//! that peer (backpressure without buffering a reply whole).

use std::io::{self, Read, Write};

pub struct Buffer {
    data: Box<[u8]>,
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
    pub fn new(capacity: usize) -> Buffer {
        Buffer {
            data: vec![0; capacity].into_boxed_slice(),
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
        self.data.len()
    }

    /// Room left once the held bytes are moved to the front.
    pub fn free(&self) -> usize {
        self.data.len() - self.len()
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
}
