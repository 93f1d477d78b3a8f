//! Framing: the 4-byte header (3-byte length, sequence id) in front of every
//! payload, and the relays that follow a client's packet frame by frame.
//!
//! Protocol page: <https://mariadb.com/kb/en/0-packet/>. A payload of
//! 2^24-1 bytes or more is sent as several frames: every frame but the last
//! is exactly [`MAX_FRAME_PAYLOAD`] long, and a payload whose length is an
//! exact multiple of it ends with an empty frame. Every frame takes the next
//! sequence id (wrapping at 255).

use std::fmt;

/// Bytes of a frame header.
pub const HEADER_LEN: usize = 4;
/// The largest payload of one frame; a frame this long is continued.
pub const MAX_FRAME_PAYLOAD: usize = 0xFF_FFFF;

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Payload bytes in this frame.
    pub len: usize,
    /// Sequence id.
    pub seq: u8,
}

/// Reads a frame header from the first 4 bytes of `b`. On the hot path
/// (every packet of every reply): one length check, no cursor.
pub fn parse_header(b: &[u8]) -> Option<Header> {
    let &[b0, b1, b2, seq, ..] = b else {
        return None;
    };
    let len = usize::from(b0) | usize::from(b1) << 8 | usize::from(b2) << 16;
    Some(Header { len, seq })
}

fn put_header(out: &mut [u8], len: usize, seq: u8) {
    debug_assert!(len <= MAX_FRAME_PAYLOAD);
    out[..3].copy_from_slice(&(len as u32).to_le_bytes()[..3]);
    out[3] = seq;
}

/// Appends `payload` framed with sequence ids from `seq`, splitting it into
/// frames of [`MAX_FRAME_PAYLOAD`] as needed. Returns the next sequence id.
pub fn write_packet(out: &mut Vec<u8>, mut seq: u8, payload: &[u8]) -> u8 {
    out.reserve(payload.len() + HEADER_LEN * (1 + payload.len() / MAX_FRAME_PAYLOAD));
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_FRAME_PAYLOAD);
        let mut header = [0u8; HEADER_LEN];
        put_header(&mut header, n, seq);
        out.extend_from_slice(&header);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        seq = seq.wrapping_add(1);
        // A full frame is always followed by another, empty if need be.
        if n < MAX_FRAME_PAYLOAD {
            return seq;
        }
    }
}

/// Reserves a header in `out` and returns where it starts; append the payload
/// to `out`, then call [`finish_packet`]. Saves the copy of [`write_packet`]
/// for the small packets the proxy writes itself.
pub fn begin_packet(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    start
}

/// Fills the header reserved by [`begin_packet`] at `start` for a payload
/// written after it. Returns the next sequence id. Meant for payloads below
/// [`MAX_FRAME_PAYLOAD`]; a longer one is re-framed by copying.
pub fn finish_packet(out: &mut Vec<u8>, start: usize, seq: u8) -> u8 {
    let len = out.len() - start - HEADER_LEN;
    debug_assert!(
        len < MAX_FRAME_PAYLOAD,
        "begin_packet payload too long: {len}"
    );
    if len >= MAX_FRAME_PAYLOAD {
        let payload = out.split_off(start + HEADER_LEN);
        out.truncate(start);
        return write_packet(out, seq, &payload);
    }
    put_header(&mut out[start..start + HEADER_LEN], len, seq);
    seq.wrapping_add(1)
}

/// Why a client's frames cannot be relayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A frame's sequence id is not the next one.
    OutOfOrder {
        /// The id the frame should have had.
        expected: u8,
        /// The id it had.
        got: u8,
    },
    /// The packet is longer than the configured limit.
    TooLarge {
        /// The limit in payload bytes.
        limit: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::OutOfOrder { expected, got } => {
                write!(
                    f,
                    "packets out of order: expected sequence id {expected}, got {got}"
                )
            }
            FrameError::TooLarge { limit } => {
                write!(f, "packet larger than max_allowed_packet ({limit} bytes)")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// What a relay's scan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayScan {
    /// Leading bytes of the scanned buffer that belong to the packet and may
    /// be forwarded now.
    pub forwardable: usize,
    /// The packet's last frame is complete within those bytes.
    pub done: bool,
}

/// Where a relay is between frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FrameCursor {
    seq: u8,
    /// Payload bytes of the current frame not yet passed.
    body_left: usize,
    /// The current frame is [`MAX_FRAME_PAYLOAD`] long: another follows.
    continued: bool,
    /// A frame header was seen and its body is being passed.
    in_frame: bool,
}

impl FrameCursor {
    fn new(seq: u8) -> FrameCursor {
        FrameCursor {
            seq,
            body_left: 0,
            continued: false,
            in_frame: false,
        }
    }
}

/// Follows one logical packet sent by a client (possibly several frames), so
/// the proxy can forward its bytes as they arrive without buffering it whole.
///
/// Feed it the bytes not yet scanned; drop the `forwardable` prefix it
/// reports and call again with the rest plus newly read bytes. Sequence ids
/// and the length limit are checked as soon as each header is seen, before
/// any byte of that frame is reported forwardable.
#[derive(Clone, Debug)]
pub struct PacketRelay {
    cur: FrameCursor,
    max_len: usize,
    total: usize,
    done: bool,
}

impl PacketRelay {
    /// A relay for a packet whose first frame has sequence id `expected_seq`
    /// and whose payload may be at most `max_len` bytes.
    pub fn new(expected_seq: u8, max_len: usize) -> PacketRelay {
        PacketRelay {
            cur: FrameCursor::new(expected_seq),
            max_len,
            total: 0,
            done: false,
        }
    }

    /// The sequence id after the frames seen so far.
    pub fn next_seq(&self) -> u8 {
        self.cur.seq
    }

    /// Payload bytes announced by the headers seen so far.
    pub fn payload_len(&self) -> usize {
        self.total
    }

    /// Whether the whole packet has been scanned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Scans `buf`, the bytes after those already reported forwardable.
    pub fn scan(&mut self, buf: &[u8]) -> Result<RelayScan, FrameError> {
        let mut pos = 0;
        while !self.done {
            let c = &mut self.cur;
            if c.in_frame {
                let n = c.body_left.min(buf.len() - pos);
                pos += n;
                c.body_left -= n;
                if c.body_left > 0 {
                    break;
                }
                c.in_frame = false;
                if !c.continued {
                    self.done = true;
                    break;
                }
            }
            let Some(h) = buf.get(pos..).and_then(parse_header) else {
                break;
            };
            if h.seq != c.seq {
                return Err(FrameError::OutOfOrder {
                    expected: c.seq,
                    got: h.seq,
                });
            }
            self.total += h.len;
            if self.total > self.max_len {
                return Err(FrameError::TooLarge {
                    limit: self.max_len,
                });
            }
            c.seq = c.seq.wrapping_add(1);
            c.body_left = h.len;
            c.continued = h.len == MAX_FRAME_PAYLOAD;
            c.in_frame = true;
            pos += HEADER_LEN;
        }
        Ok(RelayScan {
            forwardable: pos,
            done: self.done,
        })
    }
}

/// Follows the file content a client sends after `LOAD DATA LOCAL INFILE`:
/// packets with consecutive sequence ids up to and including an empty
/// packet (<https://mariadb.com/kb/en/local_infile-packet/>).
///
/// A packet of exactly [`MAX_FRAME_PAYLOAD`] bytes is followed by an empty
/// frame that belongs to it: only an empty *packet* ends the file.
#[derive(Clone, Debug)]
pub struct InfileRelay {
    packet: PacketRelay,
    max_len: usize,
    done: bool,
}

impl InfileRelay {
    /// A relay for file content whose first packet has `expected_seq`; each
    /// packet's payload may be at most `max_len_per_packet` bytes.
    pub fn new(expected_seq: u8, max_len_per_packet: usize) -> InfileRelay {
        InfileRelay {
            packet: PacketRelay::new(expected_seq, max_len_per_packet),
            max_len: max_len_per_packet,
            done: false,
        }
    }

    /// The sequence id after the frames seen so far: the server's OK/ERR
    /// comes with this id.
    pub fn next_seq(&self) -> u8 {
        self.packet.next_seq()
    }

    /// Whether the terminating empty packet has been scanned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Scans `buf`, the bytes after those already reported forwardable.
    pub fn scan(&mut self, buf: &[u8]) -> Result<RelayScan, FrameError> {
        let mut pos = 0;
        while !self.done {
            let s = self.packet.scan(&buf[pos..])?;
            pos += s.forwardable;
            if !s.done {
                break;
            }
            if self.packet.payload_len() == 0 {
                self.done = true;
            } else {
                self.packet = PacketRelay::new(self.packet.next_seq(), self.max_len);
            }
        }
        Ok(RelayScan {
            forwardable: pos,
            done: self.done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = MAX_FRAME_PAYLOAD;

    /// Frame lengths and seq ids of a framed stream, by walking the headers.
    fn frames(mut b: &[u8]) -> Vec<(usize, u8)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let h = parse_header(b).unwrap();
            out.push((h.len, h.seq));
            b = &b[HEADER_LEN + h.len..];
        }
        out
    }

    #[test]
    fn header_needs_four_bytes() {
        assert_eq!(parse_header(&[1, 0, 0]), None);
        assert_eq!(
            parse_header(&[1, 2, 3, 4]),
            Some(Header {
                len: 0x030201,
                seq: 4
            })
        );
    }

    #[test]
    fn write_packet_splits_at_the_boundaries() {
        let cases: &[(usize, &[usize])] = &[
            (0, &[0]),
            (1, &[1]),
            (MAX - 1, &[MAX - 1]),
            (MAX, &[MAX, 0]),
            (MAX + 1, &[MAX, 1]),
            (2 * MAX, &[MAX, MAX, 0]),
            (2 * (MAX + 1), &[MAX, MAX, 2]),
            (2 * MAX + 5, &[MAX, MAX, 5]),
        ];
        for &(len, want) in cases {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = vec![0xaa];
            let next = write_packet(&mut out, 254, &payload);
            assert_eq!(out[0], 0xaa);
            let got = frames(&out[1..]);
            let lens: Vec<usize> = got.iter().map(|f| f.0).collect();
            assert_eq!(lens, want, "len {len}");
            let seqs: Vec<u8> = got.iter().map(|f| f.1).collect();
            let want_seqs: Vec<u8> = (0..want.len())
                .map(|i| 254u8.wrapping_add(i as u8))
                .collect();
            assert_eq!(seqs, want_seqs);
            assert_eq!(next, 254u8.wrapping_add(want.len() as u8));
            // The payload survives, frame by frame.
            let mut joined = Vec::new();
            let mut b = &out[1..];
            while !b.is_empty() {
                let h = parse_header(b).unwrap();
                joined.extend_from_slice(&b[HEADER_LEN..HEADER_LEN + h.len]);
                b = &b[HEADER_LEN + h.len..];
            }
            assert!(joined == payload);

            // The relay sees the same packet end exactly at the end, in one
            // piece and in awkward chunks.
            let stream = &out[1..];
            let mut relay = PacketRelay::new(254, usize::MAX);
            assert_eq!(
                relay.scan(stream),
                Ok(RelayScan {
                    forwardable: stream.len(),
                    done: true
                })
            );
            assert_eq!(relay.next_seq(), next);
            assert_eq!(relay.payload_len(), len);
            // Small chunks only where they stay cheap in debug builds; the
            // big packets get every cut near each frame header below.
            let chunks: &[usize] = if len < 4096 {
                &[1, 3, 4, 5, 4093]
            } else {
                &[4093, MAX + 3]
            };
            for &chunk in chunks {
                let mut relay = PacketRelay::new(254, usize::MAX);
                let (mut fed, mut done_at) = (0, 0);
                let mut pending = 0; // bytes fed but not yet forwardable
                while fed < stream.len() {
                    let end = (fed + chunk).min(stream.len());
                    pending += end - fed;
                    fed = end;
                    let s = relay.scan(&stream[fed - pending..fed]).unwrap();
                    pending -= s.forwardable;
                    done_at += s.forwardable;
                    if s.done {
                        break;
                    }
                }
                assert_eq!(
                    (done_at, relay.is_done()),
                    (stream.len(), true),
                    "len {len} chunk {chunk}"
                );
            }
            // Two pieces, cut anywhere near a frame header.
            let mut boundaries = vec![0];
            let mut at = 0;
            while at < stream.len() {
                at += HEADER_LEN + parse_header(&stream[at..]).unwrap().len;
                boundaries.push(at);
            }
            for b in boundaries {
                for cut in b.saturating_sub(6)..(b + 6).min(stream.len()) {
                    let mut relay = PacketRelay::new(254, usize::MAX);
                    let a = relay.scan(&stream[..cut]).unwrap();
                    assert!(!a.done || cut == stream.len());
                    let z = relay.scan(&stream[a.forwardable..]).unwrap();
                    assert_eq!(
                        (a.forwardable + z.forwardable, z.done),
                        (stream.len(), true),
                        "len {len} cut {cut}"
                    );
                }
            }
            // One byte short is never done.
            let mut relay = PacketRelay::new(254, usize::MAX);
            let s = relay.scan(&stream[..stream.len() - 1]).unwrap();
            assert!(!s.done);
        }
    }

    #[test]
    fn begin_finish_matches_write_packet() {
        let mut a = vec![7];
        let start = begin_packet(&mut a);
        a.extend_from_slice(b"hello");
        assert_eq!(finish_packet(&mut a, start, 255), 0);
        let mut b = vec![7];
        assert_eq!(write_packet(&mut b, 255, b"hello"), 0);
        assert_eq!(a, b);
    }

    #[test]
    fn relay_does_not_forward_a_partial_header_or_the_next_packet() {
        let mut out = Vec::new();
        write_packet(&mut out, 0, b"\x03SELECT 1");
        write_packet(&mut out, 0, b"\x0e");
        let first = HEADER_LEN + 9;
        for cut in 0..HEADER_LEN {
            let mut relay = PacketRelay::new(0, 100);
            assert_eq!(
                relay.scan(&out[..cut]),
                Ok(RelayScan {
                    forwardable: 0,
                    done: false
                })
            );
        }
        let mut relay = PacketRelay::new(0, 100);
        assert_eq!(
            relay.scan(&out[..6]),
            Ok(RelayScan {
                forwardable: 6,
                done: false
            })
        );
        assert_eq!(
            relay.scan(&out[6..]),
            Ok(RelayScan {
                forwardable: first - 6,
                done: true
            })
        );
        assert_eq!(
            relay.scan(&out[first..]),
            Ok(RelayScan {
                forwardable: 0,
                done: true
            })
        );
        assert_eq!(relay.next_seq(), 1);
    }

    #[test]
    fn relay_checks_sequence_ids_before_forwarding() {
        let mut out = Vec::new();
        write_packet(&mut out, 3, b"x");
        let mut relay = PacketRelay::new(0, 100);
        assert_eq!(
            relay.scan(&out),
            Err(FrameError::OutOfOrder {
                expected: 0,
                got: 3
            })
        );

        // The continuation frame of a big packet has the wrong id.
        let mut big = vec![0u8; HEADER_LEN];
        put_header(&mut big, MAX, 0);
        big.resize(HEADER_LEN + MAX, 0);
        big.extend_from_slice(&[0, 0, 0, 9]);
        let mut relay = PacketRelay::new(0, usize::MAX);
        assert_eq!(
            relay.scan(&big),
            Err(FrameError::OutOfOrder {
                expected: 1,
                got: 9
            })
        );
    }

    #[test]
    fn relay_refuses_too_large_at_the_header() {
        let mut out = Vec::new();
        write_packet(&mut out, 0, &[0u8; 101]);
        let mut relay = PacketRelay::new(0, 100);
        assert_eq!(
            relay.scan(&out[..HEADER_LEN]),
            Err(FrameError::TooLarge { limit: 100 })
        );
        let mut relay = PacketRelay::new(0, 101);
        assert!(relay.scan(&out).unwrap().done);
        // A multi-frame packet is refused as soon as the total passes.
        let payload = vec![1u8; MAX + 10];
        let mut out = Vec::new();
        write_packet(&mut out, 0, &payload);
        let mut relay = PacketRelay::new(0, MAX + 9);
        let s = relay.scan(&out[..HEADER_LEN + MAX]).unwrap();
        assert_eq!(
            s,
            RelayScan {
                forwardable: HEADER_LEN + MAX,
                done: false
            }
        );
        assert_eq!(
            relay.scan(&out[HEADER_LEN + MAX..]),
            Err(FrameError::TooLarge { limit: MAX + 9 })
        );
    }

    #[test]
    fn infile_relay_ends_at_the_empty_packet() {
        let mut out = Vec::new();
        let mut seq = 2;
        seq = write_packet(&mut out, seq, b"1,a\n2,b\n");
        seq = write_packet(&mut out, seq, b"3,c\n");
        let end_seq = write_packet(&mut out, seq, b"");
        let len = out.len();
        write_packet(&mut out, 0, b"\x0e"); // the next command: not part of it
        for split in 0..=len {
            let mut relay = InfileRelay::new(2, 100);
            let a = relay.scan(&out[..split]).unwrap();
            let b = relay.scan(&out[a.forwardable..]).unwrap();
            assert_eq!(a.forwardable + b.forwardable, len, "split {split}");
            assert!(b.done && relay.is_done());
            assert_eq!(relay.next_seq(), end_seq);
        }
        let mut relay = InfileRelay::new(2, 100);
        assert!(!relay.scan(&out[..len - 4]).unwrap().done);
        let mut relay = InfileRelay::new(3, 100);
        assert_eq!(
            relay.scan(&out),
            Err(FrameError::OutOfOrder {
                expected: 3,
                got: 2
            })
        );
    }

    #[test]
    fn infile_relay_does_not_end_at_the_empty_frame_of_a_full_packet() {
        let mut out = Vec::new();
        let seq = write_packet(&mut out, 2, &vec![b'x'; MAX]);
        let full = out.len();
        let end = write_packet(&mut out, seq, b"");
        let mut relay = InfileRelay::new(2, MAX);
        let s = relay.scan(&out[..full]).unwrap();
        assert_eq!(
            s,
            RelayScan {
                forwardable: full,
                done: false
            }
        );
        let s = relay.scan(&out[full..]).unwrap();
        assert_eq!(
            s,
            RelayScan {
                forwardable: HEADER_LEN,
                done: true
            }
        );
        assert_eq!(relay.next_seq(), end);
    }

    #[test]
    fn errors_display_on_one_line() {
        for e in [
            FrameError::OutOfOrder {
                expected: 1,
                got: 2,
            },
            FrameError::TooLarge { limit: 5 },
        ] {
            assert!(!e.to_string().contains('\n'));
        }
    }
}
