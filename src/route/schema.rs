//! Which tables are sharded, by which key, and which are global.
//!
//! Table names are matched ASCII case-insensitively whatever the server's
//! `lower_case_table_names`: treating `Users` as the sharded `users` can only
//! make the proxy refuse more, never route a statement to the wrong shard.

/// How the key column's values compare on the server, which decides the
/// bytes that are hashed (values the server considers equal must hash alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// An integer column: `42`, `'42'` and `042` are one key.
    Int,
    /// A string column compared byte for byte (VARBINARY, or a `_bin`
    /// collation: trailing spaces are ignored by PAD SPACE collations).
    StringBinary { pad_space: bool },
    /// A string column under a case-insensitive PAD SPACE collation
    /// (`utf8mb4_general_ci`, MariaDB's default): ASCII case and trailing
    /// spaces are folded; keys with non-ASCII bytes are refused, since
    /// folding them needs the collation's tables.
    StringCaseInsensitive,
}

/// What happens to a statement on a sharded table without a usable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// Refused with an ERR that names the table and the key column.
    #[default]
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableRule {
    Sharded {
        /// The key column, lowercase.
        key: Box<str>,
        key_type: KeyType,
        missing_key: MissingKey,
    },
    /// Not sharded: lives on the designated shard.
    Global,
}

/// The tables the proxy knows. Tables not listed are unsharded and go to the
/// designated shard like global ones.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// (lowercase name, rule). A short list scanned with [`same_name`]
    /// beats hashing a lowercased copy of the name on the hot path for the
    /// handful of tables a deployment shards: the length settles most
    /// entries, and the one that matches costs a word compare or two.
    tables: Vec<(Box<str>, TableRule)>,
    /// A one-word Bloom filter of the sharded table names (by length and
    /// first letter): most names in a statement are no sharded table, and
    /// this tells so without a lookup.
    sharded_filter: u64,
}

/// A byte value in every byte of a word.
const fn bytes(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}

/// Whether two names are equal ASCII case-insensitively: what
/// `a.eq_ignore_ascii_case(b)` answers, eight bytes at a time instead of one
/// (the standard library folds and compares byte by byte, which is most of
/// what a table lookup used to cost on the point-select path).
///
/// Names shorter than a word are read as overlapping pieces (first, middle
/// and last byte; or the first and last four), the same pieces from both
/// sides, so every byte is compared and none is read out of bounds.
#[inline]
pub(crate) fn same_name(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => {
            let w = |s: &[u8]| {
                u64::from(s[0]) | (u64::from(s[n / 2]) << 8) | (u64::from(s[n - 1]) << 16)
            };
            same_word(w(a), w(b))
        }
        4..=7 => {
            let w = |s: &[u8]| u64::from(u32_at(s, 0)) | (u64::from(u32_at(s, n - 4)) << 32);
            same_word(w(a), w(b))
        }
        _ => {
            let mut i = 0;
            while i + 8 < n {
                if !same_word(u64_at(a, i), u64_at(b, i)) {
                    return false;
                }
                i += 8;
            }
            same_word(u64_at(a, n - 8), u64_at(b, n - 8))
        }
    }
}

/// The four bytes of `s` at `i` (`i + 4 <= s.len()`), little-endian.
#[inline(always)]
fn u32_at(s: &[u8], i: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&s[i..i + 4]);
    u32::from_le_bytes(w)
}

/// The eight bytes of `s` at `i` (`i + 8 <= s.len()`), little-endian.
#[inline(always)]
fn u64_at(s: &[u8], i: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&s[i..i + 8]);
    u64::from_le_bytes(w)
}

/// Whether every byte of `x` equals `y`'s or is its other ASCII case. Two
/// bytes are one letter in two cases exactly when they differ only in bit 5
/// (0x20) and that bit set makes a lowercase letter; so the bytes may
/// differ in bit 5 where `x | 0x20` is `a..=z`, and nowhere else.
#[inline(always)]
fn same_word(x: u64, y: u64) -> bool {
    (x ^ y) & !lowercase_letters(x | bytes(0x20)) == 0
}

/// 0x20 in each byte of `w` that is `a..=z`, 0 in the others. Bit 7 of
/// `v + 0x1f` is set iff `v >= b'a'`, of `v + 0x05` iff `v > b'z'`, for
/// `v < 0x80` (no carry leaves a byte); bytes >= 0x80 are no letter.
#[inline(always)]
fn lowercase_letters(w: u64) -> u64 {
    let v = w & bytes(0x7f);
    let ge_a = v + bytes(0x80 - b'a');
    let gt_z = v + bytes(0x80 - b'z' - 1);
    (ge_a & !gt_z & !w & bytes(0x80)) >> 2
}

/// The bit of a table name in `Schema::sharded_filter`. Bit 5 set maps a
/// letter's two cases to one byte (and any other byte to some byte), which
/// is all a filter needs: names equal ASCII case-insensitively get one bit.
/// (Cheaper than `to_ascii_lowercase`, on every name of a column list.)
#[inline]
fn name_bit(name: &[u8]) -> u64 {
    let first = name.first().map_or(0, |c| (c | 0x20) as usize);
    1 << ((name.len().wrapping_mul(31) ^ first) % 64)
}

impl Schema {
    pub fn new() -> Schema {
        Schema::default()
    }

    /// Adds a table (name matched case-insensitively).
    pub fn with_table(mut self, name: &str, rule: TableRule) -> Schema {
        if matches!(rule, TableRule::Sharded { .. }) {
            self.sharded_filter |= name_bit(name.as_bytes());
        }
        self.tables.push((name.to_ascii_lowercase().into(), rule));
        self
    }

    /// False when no sharded table is named `name` (ASCII case-insensitively);
    /// true when one may be.
    #[inline]
    pub fn may_be_sharded(&self, name: &[u8]) -> bool {
        self.sharded_filter & name_bit(name) != 0
    }

    /// The rule of a table, by its bare name (no database qualifier).
    #[inline]
    pub fn table(&self, name: &[u8]) -> Option<&TableRule> {
        self.tables
            .iter()
            .find(|(n, _)| same_name(n.as_bytes(), name))
            .map(|(_, rule)| rule)
    }

    /// The sharded tables' rules, for error messages and config checks.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &TableRule)> {
        self.tables.iter().map(|(n, r)| (&**n, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_ascii_case() {
        let s = Schema::new().with_table(
            "Users",
            TableRule::Sharded {
                key: "userid".into(),
                key_type: KeyType::Int,
                missing_key: MissingKey::Error,
            },
        );
        assert!(s.table(b"USERS").is_some());
        assert!(s.table(b"users").is_some());
        assert!(s.table(b"orders").is_none());
    }

    #[test]
    fn same_name_agrees_with_eq_ignore_ascii_case_on_every_byte_pair() {
        for x in 0..=255u8 {
            for y in 0..=255u8 {
                assert_eq!(
                    same_name(&[x], &[y]),
                    [x].eq_ignore_ascii_case(&[y]),
                    "{x:#x} {y:#x}"
                );
            }
        }
    }

    /// Every length from 0 to 40 (the 1-3, 4-7 and 8+ byte paths, and names
    /// ending at, before and after a word boundary), from bytes close to the
    /// letters' edges (`@ [ ` { ~`, 0x80 + a letter, 0xc1/0xe1 which differ
    /// only in bit 5): a naive oracle decides.
    #[test]
    fn same_name_agrees_with_eq_ignore_ascii_case_on_names() {
        let alphabet = b"aAzZmM@[`{_09$\x80\xc1\xe1\xff\x00 ~";
        let mut rng = crate::test_rng::XorShift::new(0x9e37_79b9);
        let mut next = |n: usize| rng.below(n);
        for len in 0..=40usize {
            for _ in 0..500 {
                let a: Vec<u8> = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
                // The same name with its letters' cases flipped at random,
                // and now and then one byte with bit 5 flipped (a letter's
                // other case, or a different byte) or replaced: equal and
                // unequal names alike.
                let mut b: Vec<u8> = a
                    .iter()
                    .map(|&c| match c.is_ascii_alphabetic() && next(2) == 0 {
                        true => c ^ 0x20,
                        false => c,
                    })
                    .collect();
                if len > 0 && next(3) == 0 {
                    let i = next(len);
                    b[i] = match next(2) {
                        0 => b[i] ^ 0x20,
                        _ => alphabet[next(alphabet.len())],
                    };
                }
                assert_eq!(same_name(&a, &b), a.eq_ignore_ascii_case(&b), "{a:?} {b:?}");
                assert!(same_name(&a, &a));
                let mut longer = a.clone();
                longer.push(b'a');
                assert!(!same_name(&a, &longer));
            }
        }
    }

    #[test]
    fn lookup_by_names_of_every_length_in_any_case() {
        let rule = TableRule::Sharded {
            key: "id".into(),
            key_type: KeyType::Int,
            missing_key: MissingKey::Error,
        };
        let names = [
            "a",
            "ab",
            "abc",
            "abcd",
            "users",
            "orders",
            "line_it",
            "customer",
            "customers",
            "order_lines_2026",
            "order_lines_2026x",
        ];
        let s = names
            .iter()
            .fold(Schema::new(), |s, n| s.with_table(n, rule.clone()));
        for n in names {
            assert!(s.table(n.as_bytes()).is_some(), "{n}");
            assert!(s.table(n.to_ascii_uppercase().as_bytes()).is_some(), "{n}");
            let mut last = n.as_bytes().to_vec();
            *last.last_mut().unwrap() ^= 0x01;
            assert!(s.table(&last).is_none(), "{n}");
        }
        // `_` (0x5f) and DEL (0x7f) differ only in bit 5, as two cases of a
        // letter do, but are no letter.
        assert!(s.table(b"line\x7fit").is_none());
        assert!(s.table(b"LINE_IT").is_some());
    }
}
