//! Key -> bucket: the one hash every dbrouter, every release and every
//! outside tool must agree on.
//!
//! The bucket of a key is `crc32(canonical) % buckets`, where `canonical` is
//! the key's canonical form ([`crate::route::key::canonical_key`]) and
//! `crc32` is CRC-32/IEEE 802.3 exactly as zlib's `crc32()` (and Python's
//! `zlib.crc32`) computes it. A map hasher (`ahash`, `foldhash`, SipHash
//! with random keys) must never be used here: their output changes between
//! versions, platforms or runs, and a changed bucket sends a key to a shard
//! that does not hold its rows. The golden vectors in the tests pin it.
//!
//! README.md ("Which shard a key goes to") states the same rule with a
//! Python snippet for other tools.

/// One of the fixed number of hash slots between keys and shards (like
/// Couchbase's vbuckets): moving a bucket moves every key in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket(pub u32);

/// The bucket of a key's canonical bytes: CRC-32 (IEEE) modulo `buckets`.
///
/// `buckets` is the configured bucket count (validated: at least 1).
///
/// # Examples
///
/// ```
/// use dbrouter::route::hash::{bucket_of, Bucket};
/// // python3 -c 'import zlib; print(zlib.crc32(b"42") % 1024)' prints 136
/// assert_eq!(bucket_of(b"42", 1024), Bucket(136));
/// ```
pub fn bucket_of(canonical: &[u8], buckets: u32) -> Bucket {
    debug_assert!(buckets > 0, "the bucket count is validated to be >= 1");
    Bucket(crc32fast::hash(canonical) % buckets.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden vectors: (canonical bytes, CRC-32, bucket of 1024, of 4096,
    /// of 1000). Produced by
    ///
    /// ```sh
    /// python3 -c 'import zlib
    /// for k in [b"", b"0", b"1", b"42", b"-42", b"9223372036854775807",
    ///           b"-9223372036854775808", b"18446744073709551615", b"ACME",
    ///           b"acme", b"123456789", b"USER@EXAMPLE.COM"]:
    ///     c = zlib.crc32(k); print(k, hex(c), c % 1024, c % 4096, c % 1000)'
    /// ```
    ///
    /// (CPython 3, zlib's crc32). `123456789` -> `0xcbf43926` is also the
    /// published check value of CRC-32/ISO-HDLC. Never edit these numbers:
    /// a change here moves keys between shards.
    const GOLDEN: &[(&[u8], u32, u32, u32, u32)] = &[
        (b"", 0x0000_0000, 0, 0, 0),
        (b"0", 0xf4db_df21, 801, 3873, 209),
        (b"1", 0x83dc_efb7, 951, 4023, 583),
        (b"42", 0x3224_b088, 136, 136, 288),
        (b"-42", 0xbc29_aed6, 726, 3798, 342),
        (b"9223372036854775807", 0x42ea_0ade, 734, 2782, 462),
        (b"-9223372036854775808", 0xab25_130b, 779, 779, 643),
        (b"18446744073709551615", 0xbffe_511a, 282, 282, 162),
        (b"ACME", 0x3351_578a, 906, 1930, 842),
        (b"acme", 0x05c4_ba3e, 574, 2622, 814),
        (b"123456789", 0xcbf4_3926, 294, 2342, 262),
        (b"USER@EXAMPLE.COM", 0xadbc_beb9, 697, 3769, 961),
    ];

    #[test]
    fn golden_vectors() {
        for &(key, crc, b1024, b4096, b1000) in GOLDEN {
            let shown = String::from_utf8_lossy(key);
            assert_eq!(crc32fast::hash(key), crc, "crc32({shown:?})");
            assert_eq!(bucket_of(key, 1024), Bucket(b1024), "{shown:?} % 1024");
            assert_eq!(bucket_of(key, 4096), Bucket(b4096), "{shown:?} % 4096");
            assert_eq!(bucket_of(key, 1000), Bucket(b1000), "{shown:?} % 1000");
            assert_eq!(bucket_of(key, 1), Bucket(0));
            assert_eq!(bucket_of(key, u32::MAX), Bucket(crc % u32::MAX));
        }
    }

    #[test]
    fn bucket_is_below_the_count() {
        for n in [1u32, 2, 3, 7, 1024, 65536] {
            for k in 0..200u32 {
                assert!(bucket_of(k.to_string().as_bytes(), n).0 < n);
            }
        }
    }
}
