//! A key value -> the bytes that are hashed.
//!
//! The rule: two values the server considers equal for the key column must
//! give the same bytes, and two values it considers different must never
//! do; where dbrouter cannot be sure which, it refuses the value with a
//! [`KeyError`] that says how to write the key instead. Refusing is always
//! safe (the client gets an error); a wrong guess sends a row to a shard
//! where the next query will not find it.
//!
//! # Integer keys ([`KeyType::Int`])
//!
//! The canonical form is the value's ASCII decimal: `-42`, `0`, `42`; no
//! `+`, no leading zeros, no `-0`. Accepted, each verified against MariaDB
//! 10.11 (see the tests):
//!
//! - numeric literals that are integers: `42`, `-42`, `+042`, and any
//!   number of leading zeros;
//! - hexadecimal and bit-value numbers `0x2A` and `0b101010` (both 42 when
//!   compared with an integer column), with an optional sign, up to 64 bits
//!   written (the server gives wider ones, even with leading zeros, other
//!   values);
//! - quoted strings that are exactly `[+-]?[0-9]+` (`'42'`, `'-042'`): the
//!   server converts them to the number. It also converts `' 42'`,
//!   `'42abc'` and `'4.2e1'` to 42, but those are refused: there is no need
//!   to follow its every conversion to route correctly;
//! - integer parameters of COM_STMT_EXECUTE.
//!
//! Refused: decimals and exponents (`42.0`, `4.2e1`), hex and bit strings
//! (`x'2A'` compares as the string `*`, i.e. 0), anything outside
//! `i64 ∪ u64` (the column's exact type is not known, so every value a
//! BIGINT or BIGINT UNSIGNED can hold is accepted).
//!
//! # String keys
//!
//! - [`KeyType::StringBinary`] `{ pad_space: false }` (VARBINARY, `binary`):
//!   the bytes as they are, from quoted strings, hex strings and string
//!   parameters.
//! - [`KeyType::StringBinary`] `{ pad_space: true }` (a `_bin` collation):
//!   trailing spaces (0x20 only) removed, since PAD SPACE collations ignore
//!   them. Non-ASCII bytes are refused: the column stores characters, and
//!   which bytes stand for `é` depends on the connection's character set.
//! - [`KeyType::StringCaseInsensitive`] (`utf8mb4_general_ci`): trailing
//!   spaces removed and ASCII letters upper-cased. Non-ASCII bytes are
//!   refused: folding them (`'á' = 'a'`, `'ß' = 's'` on this collation)
//!   needs the collation's tables.
//!
//! Numbers are refused for string keys: a string column compared with a
//! number is compared numerically (`name = 42` matches `'42'` and
//! `'0042'`), so no single string stands for the value.

use smallvec::SmallVec;
use std::fmt;

use super::schema::KeyType;
use super::value::KeyValue;

/// Why a value cannot be used as a shard key; each message says how to write
/// the key instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// `key = NULL` matches no row.
    Null,
    /// A `?` placeholder: bind it (COM_STMT_EXECUTE) before routing.
    Unbound,
    /// An integer key compared with something that is not a plain integer.
    NotAnInteger,
    /// An integer beyond what BIGINT (signed or unsigned) holds.
    OutOfRange,
    /// A hex or bit string (`x'2A'`, `b'1'`) where it does not compare as
    /// its bytes.
    BinaryLiteral,
    /// A number compared with a string key: the server compares numerically.
    NumberForStringKey,
    /// A non-ASCII byte in a key of a case-insensitive collation.
    NonAsciiCaseInsensitive,
    /// A non-ASCII byte in a key of a `_bin` (character) collation.
    NonAsciiCharacterSet,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::Null => "the shard key is NULL, which matches no row: give it a value",
            KeyError::Unbound => {
                "the shard key is a ? placeholder without a value: it is routed when \
                 COM_STMT_EXECUTE binds it"
            }
            KeyError::NotAnInteger => {
                "the integer shard key is not a plain integer: write it as digits with an \
                 optional sign (42, -42 or '42'), without decimals, exponent or spaces"
            }
            KeyError::OutOfRange => {
                "the integer shard key is outside BIGINT's range, so no row holds it: use a \
                 value from -9223372036854775808 to 18446744073709551615"
            }
            KeyError::BinaryLiteral => {
                "the shard key is a hex or bit string (x'..', b'..'), which this key column \
                 does not compare as its bytes: write the key as a number or a quoted string"
            }
            KeyError::NumberForStringKey => {
                "the string shard key is compared with a number, which the server compares \
                 numerically ('42', '042' and 42 are all equal): quote the key ('42')"
            }
            KeyError::NonAsciiCaseInsensitive => {
                "the shard key has non-ASCII characters, which its case-insensitive collation \
                 folds by tables dbrouter does not have: use ASCII keys or a VARBINARY key \
                 column (collation = \"binary\")"
            }
            KeyError::NonAsciiCharacterSet => {
                "the shard key has non-ASCII characters, whose bytes depend on the connection's \
                 character set: use ASCII keys or a VARBINARY key column (collation = \"binary\")"
            }
        })
    }
}

impl std::error::Error for KeyError {}

/// Writes into `out` (cleared first) the bytes that are hashed for `value`
/// as a key of type `key_type`; see the module documentation for the rules.
///
/// Integer keys and strings of up to 32 bytes stay in `out`'s inline
/// storage: no heap allocation.
///
/// # Examples
///
/// ```
/// use std::borrow::Cow;
/// use dbrouter::route::key::canonical_key;
/// use dbrouter::route::schema::KeyType;
/// use dbrouter::route::value::KeyValue;
///
/// let mut out = smallvec::SmallVec::new();
/// canonical_key(&KeyValue::Number(Cow::Borrowed(b"+042")), KeyType::Int, &mut out).unwrap();
/// assert_eq!(&out[..], b"42");
/// canonical_key(&KeyValue::Str(Cow::Borrowed(b"Acme  ")), KeyType::StringCaseInsensitive, &mut out)
///     .unwrap();
/// assert_eq!(&out[..], b"ACME");
/// ```
pub fn canonical_key(
    value: &KeyValue<'_>,
    key_type: KeyType,
    out: &mut SmallVec<[u8; 32]>,
) -> Result<(), KeyError> {
    out.clear();
    match value {
        KeyValue::Null => return Err(KeyError::Null),
        KeyValue::Placeholder(_) => return Err(KeyError::Unbound),
        _ => {}
    }
    match key_type {
        KeyType::Int => {
            let int = match value {
                KeyValue::Int(v) => IntKey::from(*v),
                KeyValue::UInt(v) => IntKey {
                    negative: false,
                    magnitude: *v,
                },
                KeyValue::Number(text) => parse_number(text)?,
                KeyValue::Str(text) => parse_decimal_string(text)?,
                KeyValue::Binary(_) => return Err(KeyError::BinaryLiteral),
                KeyValue::Null | KeyValue::Placeholder(_) => unreachable!("handled above"),
            };
            int.write(out);
        }
        KeyType::StringBinary { pad_space: false } => match value {
            KeyValue::Str(bytes) | KeyValue::Binary(bytes) => out.extend_from_slice(bytes),
            _ => return Err(KeyError::NumberForStringKey),
        },
        KeyType::StringBinary { pad_space: true } => match value {
            KeyValue::Str(bytes) => {
                let bytes = trim_pad_spaces(bytes);
                if !bytes.is_ascii() {
                    return Err(KeyError::NonAsciiCharacterSet);
                }
                out.extend_from_slice(bytes);
            }
            KeyValue::Binary(_) => return Err(KeyError::BinaryLiteral),
            _ => return Err(KeyError::NumberForStringKey),
        },
        KeyType::StringCaseInsensitive => match value {
            KeyValue::Str(bytes) => {
                let bytes = trim_pad_spaces(bytes);
                if !bytes.is_ascii() {
                    return Err(KeyError::NonAsciiCaseInsensitive);
                }
                out.extend(bytes.iter().map(u8::to_ascii_uppercase));
            }
            KeyValue::Binary(_) => return Err(KeyError::BinaryLiteral),
            _ => return Err(KeyError::NumberForStringKey),
        },
    }
    Ok(())
}

/// PAD SPACE collations compare as if the shorter string were padded with
/// spaces: trailing 0x20 bytes (and only those: not tabs, not NULs) never
/// change the result.
fn trim_pad_spaces(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &bytes[..end]
}

/// An integer in `i64 ∪ u64` as sign and magnitude, so that both ranges fit
/// one type: `-2^63 ..= 2^64 - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IntKey {
    negative: bool,
    magnitude: u64,
}

impl From<i64> for IntKey {
    fn from(v: i64) -> IntKey {
        IntKey {
            negative: v < 0,
            magnitude: v.unsigned_abs(),
        }
    }
}

impl IntKey {
    /// Applies a sign, refusing negatives beyond `i64::MIN`.
    fn signed(negative: bool, magnitude: u64) -> Result<IntKey, KeyError> {
        if negative && magnitude > 1u64 << 63 {
            return Err(KeyError::OutOfRange);
        }
        Ok(IntKey {
            // -0 is 0.
            negative: negative && magnitude != 0,
            magnitude,
        })
    }

    /// Canonical ASCII decimal, without allocating.
    fn write(self, out: &mut SmallVec<[u8; 32]>) {
        let mut digits = [0u8; 20];
        let mut n = self.magnitude;
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if self.negative {
            out.push(b'-');
        }
        out.extend_from_slice(&digits[i..]);
    }
}

/// Splits an optional leading `+` or `-`.
fn split_sign(text: &[u8]) -> (bool, &[u8]) {
    match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

/// `[0-9]+` (any number of leading zeros) -> its value.
fn parse_digits(digits: &[u8]) -> Result<u64, KeyError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(KeyError::NotAnInteger);
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(KeyError::OutOfRange)
    })
}

/// Digits in `radix` (16 or 2), at most `max_digits` of them -> value.
fn parse_radix(digits: &[u8], radix: u32, max_digits: usize) -> Result<u64, KeyError> {
    if digits.is_empty() {
        return Err(KeyError::NotAnInteger);
    }
    if digits.len() > max_digits {
        // MariaDB 10.11: `userid = 0x0000000000000000002A` and a 70-digit
        // `0b...101010` match no row, although both are 42 after `+ 0`.
        return Err(KeyError::OutOfRange);
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        let digit = char::from(d)
            .to_digit(radix)
            .ok_or(KeyError::NotAnInteger)?;
        // At most 64 bits were written: no bit is shifted out.
        Ok((acc << radix.trailing_zeros()) | u64::from(digit))
    })
}

/// A numeric literal as the scanner found it.
fn parse_number(text: &[u8]) -> Result<IntKey, KeyError> {
    let (negative, body) = split_sign(text);
    // Only lowercase prefixes: `0X2A` and `0B1` are identifiers to MariaDB.
    let magnitude = if let Some(hex) = body.strip_prefix(b"0x") {
        parse_radix(hex, 16, 16)?
    } else if let Some(bits) = body.strip_prefix(b"0b") {
        parse_radix(bits, 2, 64)?
    } else {
        parse_digits(body)?
    };
    IntKey::signed(negative, magnitude)
}

/// A quoted string compared with an integer key: only `[+-]?[0-9]+`.
fn parse_decimal_string(text: &[u8]) -> Result<IntKey, KeyError> {
    let (negative, digits) = split_sign(text);
    IntKey::signed(negative, parse_digits(digits)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    const CI: KeyType = KeyType::StringCaseInsensitive;
    const BIN: KeyType = KeyType::StringBinary { pad_space: true };
    const VARBINARY: KeyType = KeyType::StringBinary { pad_space: false };

    fn num(s: &str) -> KeyValue<'_> {
        KeyValue::Number(Cow::Borrowed(s.as_bytes()))
    }
    fn st(s: &[u8]) -> KeyValue<'_> {
        KeyValue::Str(Cow::Borrowed(s))
    }
    fn bin(s: &[u8]) -> KeyValue<'_> {
        KeyValue::Binary(Cow::Borrowed(s))
    }

    fn canon(v: &KeyValue<'_>, t: KeyType) -> Result<Vec<u8>, KeyError> {
        let mut out = SmallVec::new();
        // A dirty buffer must not leak into the result.
        out.extend_from_slice(b"dirty");
        canonical_key(v, t, &mut out).map(|()| out.to_vec())
    }

    /// Integer keys. Rows marked `V` were checked on MariaDB 10.11.19
    /// (Debian 12 `mariadbd`, a throwaway `--no-defaults` instance) with
    /// `CREATE TABLE ti (userid BIGINT PRIMARY KEY)` holding 42, -42, 0,
    /// i64::MAX, i64::MIN and `CREATE TABLE tu (userid BIGINT UNSIGNED
    /// PRIMARY KEY)` holding 42, 0, u64::MAX, then
    /// `mariadb -N -e "SELECT userid FROM ti WHERE userid = <literal>"`:
    /// the row it printed is the value the literal stands for (also
    /// `SELECT 42 = 0x2A` -> 1, `SELECT 42 = x'2A'` -> 0).
    #[test]
    fn integer_keys() {
        let ok: &[(KeyValue<'_>, &str)] = &[
            (num("42"), "42"),                      // V
            (num("-42"), "-42"),                    // V
            (num("+042"), "42"),                    // V
            (num("00000000000000000000042"), "42"), // V
            (num("0"), "0"),
            (num("-0"), "0"),                                     // V
            (num("0x2A"), "42"),                                  // V
            (num("0x2a"), "42"),                                  // V
            (num("0x02A"), "42"),                                 // V (odd digit count)
            (num("0x002A"), "42"),                                // V
            (num("+0x2A"), "42"),                                 // V
            (num("-0x2A"), "-42"),                                // V
            (num("0b101010"), "42"),                              // V
            (num("-0b101010"), "-42"),                            // V
            (num("0x7FFFFFFFFFFFFFFF"), "9223372036854775807"),   // V
            (num("0xFFFFFFFFFFFFFFFF"), "18446744073709551615"),  // V (tu)
            (num("-0x8000000000000000"), "-9223372036854775808"), // V
            (num("9223372036854775807"), "9223372036854775807"),
            (num("-9223372036854775808"), "-9223372036854775808"), // V
            (num("18446744073709551615"), "18446744073709551615"), // V (tu)
            (st(b"42"), "42"),                                     // V
            (st(b"+042"), "42"),                                   // V
            (st(b"-042"), "-42"),                                  // V
            (st(b"0042"), "42"),                                   // V
            (st(b"-0"), "0"),                                      // V (ti and tu)
            (st(b"-00"), "0"),                                     // V
            (st(b"+42"), "42"),                                    // V
            (st(b"00000000000000000000042"), "42"),                // V
            (st(b"18446744073709551615"), "18446744073709551615"), // V (tu)
            (st(b"-9223372036854775808"), "-9223372036854775808"), // V
            (KeyValue::Int(42), "42"),
            (KeyValue::Int(-42), "-42"),
            (KeyValue::Int(0), "0"),
            (KeyValue::Int(i64::MIN), "-9223372036854775808"),
            (KeyValue::Int(i64::MAX), "9223372036854775807"),
            (KeyValue::UInt(42), "42"),
            (KeyValue::UInt(u64::MAX), "18446744073709551615"),
        ];
        for (v, want) in ok {
            assert_eq!(
                canon(v, KeyType::Int),
                Ok(want.as_bytes().to_vec()),
                "{v:?}"
            );
        }

        use KeyError::*;
        let refused: &[(KeyValue<'_>, KeyError)] = &[
            // The server accepts these (all V: they match 42), but they are
            // not plain integers: refusing is safe.
            (st(b" 42"), NotAnInteger),
            (st(b"  42"), NotAnInteger),
            (st(b"42 "), NotAnInteger),
            (st(b"42abc"), NotAnInteger),
            (st(b"4.2e1"), NotAnInteger),
            (st(b"42.0"), NotAnInteger),
            (num("42.0"), NotAnInteger), // V: matches 42
            (num("4.2e1"), NotAnInteger),
            (num("42.5"), NotAnInteger), // V: matches nothing
            (num("42e0"), NotAnInteger),
            (num(".5"), NotAnInteger),
            (num(""), NotAnInteger),
            (num("-"), NotAnInteger),
            (num("--42"), NotAnInteger),
            (num("+-42"), NotAnInteger),
            (num("4 2"), NotAnInteger),
            (num("0X2A"), NotAnInteger), // V: an identifier to MariaDB
            (num("0B101"), NotAnInteger),
            (num("0x"), NotAnInteger), // V: an identifier
            (num("0b"), NotAnInteger),
            (num("0xG1"), NotAnInteger),
            (num("0b102"), NotAnInteger),
            (st(b""), NotAnInteger),         // V: '' matches 0
            (st(b"0x2A"), NotAnInteger),     // V: '0x2A' matches 0, not 42
            (st(b"0b101010"), NotAnInteger), // V: matches 0
            (st(b"4 2"), NotAnInteger),
            (st("\u{ff11}\u{ff12}".as_bytes()), NotAnInteger), // fullwidth 12; V: matches 0
            (st(b"+"), NotAnInteger),
            // Out of BIGINT's range either way.
            (num("18446744073709551616"), OutOfRange), // V: matches nothing
            (num("-9223372036854775809"), OutOfRange), // V
            (st(b"18446744073709551616"), OutOfRange),
            (st(b"-9223372036854775809"), OutOfRange), // V
            (num("99999999999999999999999999"), OutOfRange),
            (num("0x0000000000000000002A"), OutOfRange), // V: matches nothing
            (num("0x10000000000000000"), OutOfRange),
            (num("-0x8000000000000001"), OutOfRange),
            (num("-0xFFFFFFFFFFFFFFFF"), OutOfRange),
            (
                num("0b00000000000000000000000000000000000000000000000000000000000000000000101010"),
                OutOfRange, // V: matches nothing
            ),
            // x'2A' is the string '*', which is 0 as a number (V); b'101010'
            // happens to match 42 (V), but neither is a number as written.
            (bin(b"*"), BinaryLiteral),
            (bin(b""), BinaryLiteral),
            (KeyValue::Null, Null),
            (KeyValue::Placeholder(0), Unbound),
        ];
        for (v, want) in refused {
            assert_eq!(canon(v, KeyType::Int), Err(*want), "{v:?}");
        }
    }

    /// Every value the server holds equal must give one canonical form, and
    /// different values different forms: exhaustively over small values and
    /// their spellings.
    #[test]
    fn integer_spellings_agree() {
        for v in -300i64..=300 {
            let want = v.to_string().into_bytes();
            let m = v.unsigned_abs();
            let sign = if v < 0 { "-" } else { "" };
            let spellings = [
                v.to_string(),
                format!("{sign}000{m}"),
                format!("{sign}0x{m:x}"),
                format!("{sign}0x{m:X}"),
                format!("{sign}0x{m:016x}"),
                format!("{sign}0b{m:b}"),
                format!("{sign}0b{m:064b}"),
            ];
            for s in &spellings {
                assert_eq!(canon(&num(s), KeyType::Int), Ok(want.clone()), "{s}");
            }
            assert_eq!(
                canon(&st(v.to_string().as_bytes()), KeyType::Int),
                Ok(want.clone())
            );
            assert_eq!(canon(&KeyValue::Int(v), KeyType::Int), Ok(want.clone()));
            if v >= 0 {
                assert_eq!(canon(&KeyValue::UInt(m), KeyType::Int), Ok(want.clone()));
                assert_eq!(canon(&num(&format!("+{m}")), KeyType::Int), Ok(want));
            }
        }
    }

    /// String keys. `V`: checked on the same MariaDB 10.11.19 with
    /// `ts (name VARCHAR(50) PRIMARY KEY) utf8mb4_general_ci` holding 'acme',
    /// '42', '0042'; `tb` the same under utf8mb4_bin holding 'acme', 'Acme',
    /// '42'; `tv (name VARBINARY(50) PRIMARY KEY)` holding 'acme', 'acme '.
    /// Also: over every pair of bytes 0..=127, utf8mb4_general_ci,
    /// utf8mb3_general_ci and latin1_swedish_ci hold two one-character
    /// strings equal only for an ASCII letter and its other case (a `seq_0_to_127`
    /// self-join), so ASCII upper-casing is exactly the folding.
    #[test]
    fn string_keys() {
        let ok: &[(KeyValue<'_>, KeyType, &[u8])] = &[
            (st(b"acme"), CI, b"ACME"),
            (st(b"ACME   "), CI, b"ACME"), // V: matches 'acme'
            (st(b"Acme"), CI, b"ACME"),
            (st(b"acme\t"), CI, b"ACME\t"), // V: matches nothing (a tab is not a pad)
            (st(b"a\0"), CI, b"A\0"),
            (st(b""), CI, b""),
            (st(b"   "), CI, b""),
            (st(b" acme"), CI, b" ACME"),
            (st(b"user@example.com"), CI, b"USER@EXAMPLE.COM"),
            (st(b"[]^_`{|}~"), CI, b"[]^_`{|}~"),
            (st(b"acme   "), BIN, b"acme"), // V: matches 'acme' only
            (st(b"Acme"), BIN, b"Acme"),    // V: 'ACME' matches nothing
            (st(b"acme"), VARBINARY, b"acme"),
            (st(b"acme "), VARBINARY, b"acme "), // V: matches 'acme ' only
            (st(b"acme  "), VARBINARY, b"acme  "), // V: matches nothing
            (bin(b"acme"), VARBINARY, b"acme"),  // V: x'61636d65' matches 'acme'
            (bin(&[0xff, 0, 0x80]), VARBINARY, &[0xff, 0, 0x80]),
            (st("é".as_bytes()), VARBINARY, "é".as_bytes()),
        ];
        for (v, t, want) in ok {
            assert_eq!(canon(v, *t), Ok(want.to_vec()), "{v:?} as {t:?}");
        }

        use KeyError::*;
        let refused: &[(KeyValue<'_>, KeyType, KeyError)] = &[
            // V: `name = 42` on ts matches '42' and '0042'.
            (num("42"), CI, NumberForStringKey),
            (num("42"), BIN, NumberForStringKey),
            (num("42"), VARBINARY, NumberForStringKey),
            (KeyValue::Int(42), CI, NumberForStringKey),
            (KeyValue::UInt(42), VARBINARY, NumberForStringKey),
            // V: `name = 0x61636d65` on ts matches 'acme': a hex number as a
            // string, but still a Number to the scanner: refused.
            (num("0x61636d65"), CI, NumberForStringKey),
            // V: x'41434D45' matches 'acme' on ts: it is folded too, but
            // refusing keeps one rule for hex strings.
            (bin(b"ACME"), CI, BinaryLiteral),
            (bin(b"acme"), BIN, BinaryLiteral),
            // V (SET NAMES utf8mb4): 'a' = 'á' and 's' = 'ß' are 1 under
            // utf8mb4_general_ci.
            (st("á".as_bytes()), CI, NonAsciiCaseInsensitive),
            (st("ß".as_bytes()), CI, NonAsciiCaseInsensitive),
            (st(&[b'a', 0xe9]), CI, NonAsciiCaseInsensitive),
            (st("é".as_bytes()), BIN, NonAsciiCharacterSet),
            (KeyValue::Null, CI, Null),
            (KeyValue::Null, VARBINARY, Null),
            (KeyValue::Placeholder(3), BIN, Unbound),
        ];
        for (v, t, want) in refused {
            assert_eq!(canon(v, *t), Err(*want), "{v:?} as {t:?}");
        }
    }

    #[test]
    fn ascii_case_and_pad_fold_to_one_key() {
        let spellings: [&[u8]; 5] = [b"Acme", b"acme", b"ACME ", b"aCmE   ", b"acme "];
        for s in spellings {
            assert_eq!(canon(&st(s), CI), Ok(b"ACME".to_vec()));
        }
        // Different keys stay different.
        assert_ne!(canon(&st(b"acme"), CI), canon(&st(b"acme."), CI));
        assert_ne!(canon(&st(b"acme"), CI), canon(&st(b" acme"), CI));
        assert_ne!(canon(&st(b"acme"), BIN), canon(&st(b"Acme"), BIN));
    }

    #[test]
    fn normal_keys_do_not_allocate() {
        let mut out = SmallVec::new();
        canonical_key(&KeyValue::Int(i64::MIN), KeyType::Int, &mut out).unwrap();
        assert!(!out.spilled());
        canonical_key(&st(&[b'a'; 32]), CI, &mut out).unwrap();
        assert!(!out.spilled());
    }

    #[test]
    fn errors_say_what_to_do() {
        use KeyError::*;
        for e in [
            Null,
            Unbound,
            NotAnInteger,
            OutOfRange,
            BinaryLiteral,
            NumberForStringKey,
            NonAsciiCaseInsensitive,
            NonAsciiCharacterSet,
        ] {
            let s = e.to_string();
            assert!(!s.contains('\n') && s.contains(':'), "{s}");
        }
    }
}
