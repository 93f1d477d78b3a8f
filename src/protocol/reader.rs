//! A cursor over untrusted bytes, and the matching writers.
//!
//! Every read returns `Option` and leaves the cursor where it was when it
//! fails, so a parser written with `?` cannot index out of bounds on hostile
//! input. Length-encoded integers and strings follow
//! <https://mariadb.com/kb/en/protocol-data-types/>.

/// A read cursor over a byte slice.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// How many bytes were read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Everything not yet read; the cursor moves to the end.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }

    /// The next byte without reading it.
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Some(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    /// A little-endian `u16`.
    pub fn u16_le(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    /// A little-endian 3-byte integer.
    pub fn u24_le(&mut self) -> Option<u32> {
        let [a, b, c] = self.array()?;
        Some(u32::from_le_bytes([a, b, c, 0]))
    }

    /// A little-endian `u32`.
    pub fn u32_le(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64_le(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// A length-encoded integer. `0xFB` (NULL in a text row) and `0xFF` (an
    /// ERR header) are not integers: both give `None`.
    pub fn lenenc_int(&mut self) -> Option<u64> {
        let start = self.pos;
        let v = match self.u8()? {
            b @ 0..=0xfa => Some(u64::from(b)),
            0xfc => self.u16_le().map(u64::from),
            0xfd => self.u24_le().map(u64::from),
            0xfe => self.u64_le(),
            _ => None,
        };
        if v.is_none() {
            self.pos = start;
        }
        v
    }

    /// Bytes up to a NUL, without it; the NUL is consumed.
    pub fn null_terminated(&mut self) -> Option<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        let n = memchr::memchr(0, rest)?;
        self.pos += n + 1;
        Some(&rest[..n])
    }

    /// A length-encoded string.
    pub fn lenenc_bytes(&mut self) -> Option<&'a [u8]> {
        let start = self.pos;
        let out = self
            .lenenc_int()
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| self.bytes(n));
        if out.is_none() {
            self.pos = start;
        }
        out
    }
}

/// How many bytes [`put_lenenc_int`] writes for `v`.
pub fn lenenc_int_len(v: u64) -> usize {
    match v {
        0..=0xfa => 1,
        0xfb..=0xffff => 3,
        0x1_0000..=0xff_ffff => 4,
        _ => 9,
    }
}

/// Appends a length-encoded integer.
pub fn put_lenenc_int(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=0xfa => out.push(v as u8),
        0xfb..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Appends a length-encoded string.
pub fn put_lenenc_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_lenenc_int(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_round_trips_at_every_width_boundary() {
        for v in [
            0,
            1,
            0xfa,
            0xfb,
            0xfc,
            0xffff,
            0x1_0000,
            0xff_ffff,
            0x100_0000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_lenenc_int(&mut out, v);
            assert_eq!(out.len(), lenenc_int_len(v), "{v:#x}");
            let mut r = Reader::new(&out);
            assert_eq!(r.lenenc_int(), Some(v), "{v:#x}");
            assert!(r.is_empty());
            // Every truncation fails and leaves the cursor at the start.
            for cut in 0..out.len() {
                let mut r = Reader::new(&out[..cut]);
                assert_eq!(r.lenenc_int(), None);
                assert_eq!(r.position(), 0);
            }
        }
    }

    #[test]
    fn null_and_err_headers_are_not_integers() {
        assert_eq!(Reader::new(&[0xfb]).lenenc_int(), None);
        assert_eq!(Reader::new(&[0xff, 0, 0]).lenenc_int(), None);
    }

    #[test]
    fn fixed_width_reads() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let mut r = Reader::new(&b);
        assert_eq!(r.u8(), Some(1));
        assert_eq!(r.u16_le(), Some(0x0302));
        assert_eq!(r.u24_le(), Some(0x060504));
        assert_eq!(r.u32_le(), None);
        assert_eq!(r.position(), 6);
        assert_eq!(r.rest(), &[7, 8, 9]);
        assert_eq!(r.u8(), None);
        assert_eq!(Reader::new(&b[1..]).u64_le(), Some(0x0908070605040302));
    }

    #[test]
    fn strings() {
        let mut out = b"abc\0".to_vec();
        put_lenenc_bytes(&mut out, b"xyz");
        out.extend_from_slice(b"tail");
        let mut r = Reader::new(&out);
        assert_eq!(r.null_terminated(), Some(&b"abc"[..]));
        assert_eq!(r.lenenc_bytes(), Some(&b"xyz"[..]));
        assert_eq!(r.null_terminated(), None);
        assert_eq!(r.remaining(), 4);
        assert_eq!(r.bytes(5), None);
        assert_eq!(r.bytes(4), Some(&b"tail"[..]));
        // A length that runs past the end fails without moving.
        let mut r = Reader::new(&[5, b'a']);
        assert_eq!(r.lenenc_bytes(), None);
        assert_eq!(r.position(), 0);
        assert_eq!(
            Reader::new(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).lenenc_bytes(),
            None
        );
    }
}
