//! The fast path for the statement applications send most:
//!
//! ```text
//! SELECT <names, dots, commas, *> FROM [db.]<sharded table> [[AS] alias]
//!     WHERE [[db.]t.]<key> = <integer | 'plain string' | ?>
//! ```
//!
//! ending the statement. It reads the bytes once, with no tokens, no
//! parser state and no allocation, and answers exactly what the full parser
//! ([`super::analyze_reference`]) answers for the same statement. Anything
//! outside that narrow shape, or anything it is not sure the full parser
//! reads the same way, makes it return `None`, and the full parser runs as
//! if the fast path did not exist. So every rule below only decides when to
//! give up: comments, strings outside the literal, escapes, parentheses,
//! numbers and `?` in the column list, whitespace around a `.`, signs,
//! decimals, keywords where a name is expected, a name that spells a
//! sharded table where the full parser would count it as a stray, a WHERE
//! column that is not the table's key, a `;`, anything after the literal.
//!
//! `tests/scanner_differential.rs` and `tests/routing_golden.rs` check, on
//! every statement they hold, that `analyze` (fast path first) and
//! `analyze_reference` (full parser only) agree; the unit tests below check
//! it on point selects mutated byte by byte and generated at random.

use smallvec::SmallVec;

use super::lexer::{keyword, Kw};
use super::{introducer, Analysis, StatementKind, Target};
use crate::route::schema::{same_name, Schema, TableRule};
use crate::route::value::KeyValue;
use std::borrow::Cow;

// Byte classes of the fast path: one table load per byte decides. The
// numbers pair classes that are tested together, so that one compare
// tests both: `c | 1 == DIGIT` is a name byte, `c | 1 == LIST` a byte
// between names of the column list.
/// Anything else: the full parser's.
const OTHER: u8 = 0;
/// A byte that may start an unquoted name: a letter, `_`, `$`, >= 0x80
/// (MariaDB's `ident_map` for ASCII-compatible character sets).
const NAME: u8 = 2;
/// `0-9`: continues a name, but starts a number.
const DIGIT: u8 = 3;
const BACKQUOTE: u8 = 4;
const DOT: u8 = 5;
/// `my_isspace`: the bytes the server skips between tokens.
const SPACE: u8 = 6;
/// `,` and `*`: in the column list, read as themselves.
const LIST: u8 = 7;

static CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => SPACE,
            b'0'..=b'9' => DIGIT,
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'$' | 0x80..=0xff => NAME,
            b'`' => BACKQUOTE,
            b'.' => DOT,
            b',' | b'*' => LIST,
            _ => OTHER,
        };
        i += 1;
    }
    t
};

/// One in every byte of a word.
const LO: u64 = 0x0101_0101_0101_0101;

#[inline(always)]
fn class(sql: &[u8], i: usize) -> u8 {
    match sql.get(i) {
        Some(&c) => CLASS[c as usize],
        None => OTHER,
    }
}

/// The bytes of `s` before its first backquote; `None` when it has none.
/// Names are short: one 8-byte word mostly holds the closing quote, where a
/// byte loop or a `memchr` call would cost several times more. (Returned
/// as a prefix of `s`, not an index: the compiler then sees it in bounds.)
#[inline(always)]
fn until_backquote(s: &[u8]) -> Option<&[u8]> {
    const HI: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = LO * b'`' as u64;
    let mut words = s.chunks_exact(8);
    let mut i = 0;
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().unwrap()) ^ QUOTES;
        // A zero byte of x is a backquote; the lowest flagged byte is the
        // first one (borrows only flag bytes above a true zero).
        let z = x.wrapping_sub(LO) & !x & HI;
        if z != 0 {
            return s.get(..i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let j = words.remainder().iter().position(|&c| c == b'`')?;
    s.get(..i + j)
}

/// A word `lower` of at most 8 lowercase letters, in any case: the word
/// is read as one integer, and bit 5 set in each of its bytes, which maps a
/// letter's two cases, and only them, to its lowercase. (One compare instead
/// of one per byte: the keywords are checked on every point select.)
#[inline(always)]
fn is_kw<const N: usize>(word: &[u8], lower: &[u8; N]) -> bool {
    const { assert!(N >= 1 && N <= 8) };
    let Ok(word) = <&[u8; N]>::try_from(word) else {
        return false;
    };
    let (mut w, mut k) = ([0; 8], [0; 8]);
    w[..N].copy_from_slice(word);
    k[..N].copy_from_slice(lower);
    let case = (LO * 0x20) & (u64::MAX >> (64 - 8 * N));
    u64::from_le_bytes(w) | case == u64::from_le_bytes(k)
}

/// Whether the unquoted word at `i` is `lower` (see `is_kw`): its bytes,
/// and no byte after them that would continue the word. For the keywords
/// every point select has, SELECT, FROM and WHERE: read in one word, not
/// byte by byte as a name.
#[inline(always)]
fn keyword_at<const N: usize>(sql: &[u8], i: usize, lower: &[u8; N]) -> bool {
    match sql.get(i..i + N) {
        Some(w) => is_kw(w, lower) && class(sql, i + N) | 1 != DIGIT,
        None => false,
    }
}

/// Whether `name` (unquoted) is a word the lexer reads as a keyword the
/// parser acts on. Quoted names never are.
#[inline]
fn is_keyword(name: &[u8], quoted: bool) -> bool {
    !quoted && keyword(name) != Kw::None
}

/// The first byte at or after `i` that is not `my_isspace`.
#[inline(always)]
fn skip_space(sql: &[u8], mut i: usize) -> usize {
    while class(sql, i) == SPACE {
        i += 1;
    }
    i
}

/// The unquoted name whose first byte (a NAME byte) is at `i`: its text
/// and the index after it.
#[inline(always)]
fn unquoted(sql: &[u8], i: usize) -> Option<(&[u8], usize)> {
    let rest = sql.get(i..)?;
    let mut n = 1;
    // NAME (2) and DIGIT (3) differ only in bit 0: one compare for both.
    while let Some(&c) = rest.get(n) {
        if CLASS[c as usize] | 1 != DIGIT {
            break;
        }
        n += 1;
    }
    // A prefix of `rest`, not `sql[i..i + n]`: the compiler sees it in
    // bounds.
    let text = rest.get(..n)?;
    Some((text, i + n))
}

/// The backquoted name whose opening quote is at `i`: its text and the
/// index after its closing quote. `None` when it is unterminated (the full
/// parser's error), empty, or holds a doubled backquote (the full parser's
/// to unescape).
#[inline(always)]
fn quoted(sql: &[u8], i: usize) -> Option<(&[u8], usize)> {
    let text = until_backquote(sql.get(i + 1..)?)?;
    let next = i + 2 + text.len();
    if text.is_empty() || sql.get(next) == Some(&b'`') {
        return None;
    }
    Some((text, next))
}

/// The name at `i`, if one starts there: its text, whether it is quoted,
/// and the index after it. A digit first makes a number or `12abc`; a lone
/// x, b or n before a quote makes a hex, bit or national string: both end
/// up in a position where the fast path expects no quote, and it gives up.
#[inline(always)]
fn name(sql: &[u8], i: usize) -> Option<(&[u8], bool, usize)> {
    match class(sql, i) {
        NAME => {
            let (text, next) = unquoted(sql, i)?;
            Some((text, false, next))
        }
        BACKQUOTE => {
            let (text, next) = quoted(sql, i)?;
            Some((text, true, next))
        }
        _ => None,
    }
}

/// Whether `i` holds a qualifying `.`: one followed directly by a name. A
/// `.` followed by anything else (a digit, a space, the end) is left for the
/// caller, which gives up at it.
#[inline(always)]
fn is_dot(sql: &[u8], i: usize) -> bool {
    sql.get(i) == Some(&b'.') && matches!(class(sql, i + 1), NAME | BACKQUOTE)
}

/// Whether `name` spells a sharded table: where the full parser would
/// count it as a stray (a name not directly followed by a qualifying `.`),
/// it refuses, and the fast path leaves that to it.
#[inline(always)]
fn sharded(schema: &Schema, name: &[u8]) -> bool {
    schema.may_be_sharded(name) && matches!(schema.table(name), Some(TableRule::Sharded { .. }))
}

/// `Some` with the full parser's answer when the statement has the shape
/// above; `None` when the full parser must decide.
///
/// Written as index arithmetic over `sql`, one byte class per decision,
/// each byte read once where it can be: this runs on most statements, and
/// the names, dots and commas of an ORM's column list are most of its cost.
pub(super) fn point_select<'a>(sql: &'a [u8], schema: &'a Schema) -> Option<PointSelect<'a>> {
    let i = skip_space(sql, 0);
    if !keyword_at(sql, i, b"select") {
        return None;
    }
    let mut i = i + 6;

    // The column list: the full parser only counts strays in it and stops
    // at FROM (or notes a set operation), so any names, dots, commas and
    // `*` read the same. A name costs its bytes (a word per backquoted
    // one) and, when not a qualifier, a one-word Bloom filter probe.
    'list: loop {
        let mut c = class(sql, i);
        while c | 1 == LIST {
            i += 1;
            c = class(sql, i);
        }
        let (mut text, mut next) = match c {
            BACKQUOTE => quoted(sql, i)?,
            NAME => {
                // The lexer gives a keyword to every word not right after
                // a `.` (`from.x` starts the FROM clause).
                if keyword_at(sql, i, b"from") {
                    i += 4;
                    break;
                }
                let (w, end) = unquoted(sql, i)?;
                match w.len() {
                    5 if is_kw(w, b"union") || is_kw(w, b"minus") => return None,
                    6 if is_kw(w, b"except") => return None,
                    9 if same_name(w, b"intersect") => return None,
                    _ => {}
                }
                (w, end)
            }
            _ => return None,
        };
        // Qualifiers (never strays), up to the name they qualify: `t.col`,
        // `db.t.col`, `t.*`. No keyword right after a `.`.
        while sql.get(next) == Some(&b'.') {
            i = next + 1;
            (text, next) = match class(sql, i) {
                BACKQUOTE => quoted(sql, i)?,
                NAME => unquoted(sql, i)?,
                LIST if sql.get(i) == Some(&b'*') => {
                    i += 1;
                    continue 'list;
                }
                _ => return None,
            };
        }
        i = next;
        if sharded(schema, text) {
            return None;
        }
    }

    // The table, maybe `db.`-qualified; a keyword there (DUAL, a join
    // word) is the full parser's.
    let (first, first_quoted, mut i) = name(sql, skip_space(sql, i))?;
    if is_keyword(first, first_quoted) {
        return None;
    }
    let mut table = first;
    if sql.get(i) == Some(&b'.') {
        if !is_dot(sql, i) {
            return None;
        }
        (table, _, i) = name(sql, i + 1)?;
        if sql.get(i) == Some(&b'.') {
            return None;
        }
    }
    let Some(TableRule::Sharded { key, .. }) = schema.table(table) else {
        // Global and unknown tables: rare on the hot path, and their
        // WHERE clause may be anything.
        return None;
    };

    // `[AS] alias`, then WHERE. `qualifier` is the name columns may be
    // qualified with: the alias, or the table when there is none.
    let (mut qualifier, mut aliased) = (table, false);
    let i = skip_space(sql, i);
    let i = if keyword_at(sql, i, b"where") {
        i + 5
    } else {
        let (mut a, mut a_quoted, mut i) = name(sql, i)?;
        if !a_quoted && is_kw(a, b"as") {
            (a, a_quoted, i) = name(sql, skip_space(sql, i))?;
        }
        // Only a plain name: a keyword may be a join, a hint, PARTITION.
        if sql.get(i) == Some(&b'.') || is_keyword(a, a_quoted) || sharded(schema, a) {
            return None;
        }
        (qualifier, aliased) = (a, true);
        let i = skip_space(sql, i);
        if !keyword_at(sql, i, b"where") {
            return None;
        }
        i + 5
    };

    // `[[db.]t.]key`: up to three parts, as the full parser's colref. NULL,
    // NOT, CASE, an introducer...: not a column there.
    let (head, head_quoted, mut i) = name(sql, skip_space(sql, i))?;
    if !head_quoted
        && (is_keyword(head, false) || (head.first() == Some(&b'_') && introducer(head).is_some()))
    {
        return None;
    }
    let (mut col, mut qual, mut parts) = (head, head, 1);
    while is_dot(sql, i) {
        if parts == 3 {
            return None;
        }
        qual = col;
        (col, _, i) = name(sql, i + 1)?;
        parts += 1;
    }
    if sql.get(i) == Some(&b'.') {
        return None;
    }
    // `t.key` names the alias, or the table when there is none; `db.t.key`
    // the table, and only when it has no alias (as the full parser reads
    // them). Without an alias, `qualifier` is the table.
    let resolves = same_name(col, key.as_bytes())
        && (parts == 1 || ((parts == 2 || !aliased) && same_name(qual, qualifier)));
    if !resolves || sharded(schema, col) {
        return None;
    }

    // `= literal`, and nothing after it.
    let mut i = skip_space(sql, i);
    if sql.get(i) != Some(&b'=') {
        return None;
    }
    let start = skip_space(sql, i + 1);
    let (value, placeholders, end) = match *sql.get(start)? {
        b'?' => (KeyValue::Placeholder(0), 1, start + 1),
        b'0'..=b'9' => {
            i = start + 1;
            while class(sql, i) == DIGIT {
                i += 1;
            }
            // `42.5`, `4e2`, `0x2A`, `12abc`: the lexer's number rules.
            if matches!(class(sql, i), DOT | NAME) {
                return None;
            }
            (KeyValue::Number(Cow::Borrowed(sql.get(start..i)?)), 0, i)
        }
        b'\'' => {
            let body = start + 1;
            // A backslash is an escape or, under NO_BACKSLASH_ESCAPES, not:
            // either way the full parser's; so is a doubled quote. Key
            // strings are short: a plain loop beats a search call.
            i = body;
            loop {
                match sql.get(i) {
                    Some(b'\'') => break,
                    Some(b'\\') | None => return None,
                    Some(_) => i += 1,
                }
            }
            if sql.get(i + 1) == Some(&b'\'') {
                return None;
            }
            (KeyValue::Str(Cow::Borrowed(sql.get(body..i)?)), 0, i + 1)
        }
        _ => return None,
    };
    if skip_space(sql, end) != sql.len() {
        return None;
    }
    Some(PointSelect {
        table,
        column: key.as_bytes(),
        value,
        placeholders,
    })
}

/// What the fast path found: the full parser's answer in the few words it
/// needs. The caller builds the [`Analysis`] in its own return value
/// ([`PointSelect::analysis`]), so the analysis is not copied on its way
/// out as a whole `Option<Analysis>` would be (~180 bytes, a `memcpy`).
pub(super) struct PointSelect<'a> {
    table: &'a [u8],
    column: &'a [u8],
    value: KeyValue<'a>,
    placeholders: u16,
}

impl<'a> PointSelect<'a> {
    #[inline(always)]
    pub(super) fn analysis(self) -> Analysis<'a> {
        Analysis {
            kind: StatementKind::Select,
            target: Target::Keys {
                table: self.table,
                column: self.column,
                // In place: `smallvec![value]` pushes through a capacity
                // check and copies the whole vector. The three unused slots
                // are forgotten, and `Null` owns nothing.
                values: SmallVec::from_buf_and_len(
                    [self.value, KeyValue::Null, KeyValue::Null, KeyValue::Null],
                    1,
                ),
            },
            placeholders: self.placeholders,
            unsharded_tables: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::schema;
    use super::super::{analyze_reference, ScanOptions};
    use super::*;
    use crate::route::schema::{KeyType, MissingKey};

    /// The fast path agrees with the full parser whenever it answers, under
    /// every option set; returns whether it answered.
    fn agrees(sql: &[u8], schema: &Schema) -> bool {
        let fast = point_select(sql, schema).map(PointSelect::analysis);
        for opts in [
            ScanOptions::new(101119),
            ScanOptions {
                no_backslash_escapes: true,
                ansi_quotes: true,
                server_version: 50544,
            },
        ] {
            if let Some(f) = &fast {
                assert_eq!(
                    Ok(f.clone()),
                    analyze_reference(sql, schema, &opts),
                    "{:?} {opts:?}",
                    String::from_utf8_lossy(sql)
                );
            }
        }
        fast.is_some()
    }

    #[test]
    fn until_backquote_matches_the_naive_search() {
        let mut rng = crate::test_rng::XorShift::new(0x2545_f491);
        for len in 0..40usize {
            for _ in 0..200 {
                let h: Vec<u8> = (0..len)
                    .map(|_| {
                        [b'`', b'a', b'`' ^ 0x80, 0, 0xff, b'_', b'`' + 1, b'`' - 1][rng.below(8)]
                    })
                    .collect();
                for i in 0..=len {
                    let naive = h[i..].iter().position(|&c| c == b'`').map(|j| &h[i..i + j]);
                    assert_eq!(until_backquote(&h[i..]), naive, "{h:?} from {i}");
                }
            }
        }
    }

    const SEEDS: &[&str] = &[
        "SELECT `users`.`userid`, `users`.`name`, `users`.`email` FROM `users` WHERE `users`.`userid` = 42",
        "select u1_0.userid,u1_0.name from users u1_0 where u1_0.userid=?",
        "SELECT * FROM db.users AS u WHERE u.userid = 'abc'",
        "SELECT name FROM accounts WHERE name = 'x y'",
        "SELECT a, b.c FROM orders WHERE db.orders.userid = 7",
        "SELECT users.*, `o`.* FROM users WHERE userid = 9",
    ];

    #[test]
    fn the_common_shapes_take_the_fast_path() {
        let s = schema();
        for sql in SEEDS {
            assert!(agrees(sql.as_bytes(), &s), "{sql}");
        }
    }

    #[test]
    fn what_it_must_leave_to_the_full_parser() {
        let s = schema();
        for sql in [
            "SELECT users FROM users WHERE userid = 1",
            "SELECT a FROM users orders WHERE userid = 1",
            "SELECT a FROM users WHERE users.userid = 1 OR 1",
            "SELECT a FROM users WHERE userid = 1;",
            "SELECT a FROM users WHERE userid = -1",
            "SELECT a FROM users WHERE userid = 1.5",
            "SELECT a FROM users WHERE userid = 0x2A",
            "SELECT a FROM users WHERE userid = 'a''b'",
            "SELECT a FROM users WHERE userid = 'a\\'b'",
            "SELECT a FROM users WHERE userid = 'a' 'b'",
            "SELECT a FROM users WHERE userid = x'2a'",
            "SELECT a FROM users WHERE userid = NULL",
            "SELECT a FROM users WHERE userid = 1 -- x",
            "SELECT a FROM users WHERE u.userid = 1",
            "SELECT a FROM users u WHERE users.userid = 1",
            "SELECT a FROM users WHERE name = 1",
            "SELECT a FROM countries WHERE userid = 1",
            "SELECT a FROM users, orders WHERE userid = 1",
            "SELECT a FROM users JOIN orders WHERE userid = 1",
            "SELECT a FROM users USE INDEX (x) WHERE userid = 1",
            "SELECT a FROM users PARTITION (p) WHERE userid = 1",
            "SELECT a UNION SELECT b FROM users WHERE userid = 1",
            "SELECT a INTERSECT SELECT b FROM users WHERE userid = 1",
            "SELECT a Except SELECT b FROM users WHERE userid = 1",
            "SELECT a minus SELECT b FROM users WHERE userid = 1",
            "SELECT (a) FROM users WHERE userid = 1",
            "SELECT a FROM dual WHERE userid = 1",
            "SELECT a FROM users . x WHERE userid = 1",
            "SELECT a FROM users WHERE users . userid = 1",
            "SELECT a FROM users WHERE a.b.c.userid = 1",
            "SELECT a FROM users WHERE userid <=> 1",
            "SELECT a FROM users WHERE userid = ? LIMIT 1",
            "SELECT `a``b` FROM users WHERE userid = 1",
            "SELECT a FROM `users WHERE userid = 1",
            "SELECT a FROM users WHERE userid = 'open",
            "INSERT INTO users (userid) VALUES (1)",
        ] {
            assert!(!agrees(sql.as_bytes(), &s), "{sql}");
        }
    }

    /// The edges of what this file reads differently from a byte loop:
    /// names whose closing backquote falls at every offset of an 8-byte
    /// word and in the tail after the last whole word, keywords read as
    /// one word (and the byte after them), names compared as words
    /// ASCII case-insensitively, bytes >= 0x80 in names.
    #[test]
    fn word_at_a_time_edges() {
        let s = schema();
        let answered = [
            // Mixed-case table, qualifier and key names.
            "SELECT a FROM UsErS WHERE USERID = 1",
            "SELECT a FROM `USERS` WHERE `UserId` = 1",
            "SELECT Users.a FROM db.USERS WHERE users.USERID = 1",
            "SELECT a FROM users AS U WHERE u.userid = 1",
            "SELECT a FROM ACCOUNTS a WHERE A.NAME = 'x'",
            "SeLeCt a FrOm users wHeRe userid = 1",
            // Backquoted names of 1 to 17 bytes: the closing quote in every
            // byte of the first and second word.
            "SELECT `a`, `ab`, `abc`, `abcd`, `abcde`, `abcdef` FROM users WHERE userid = 1",
            "SELECT `abcdefg`, `abcdefgh`, `abcdefghi` FROM users WHERE userid = 1",
            "SELECT `abcdefghijklmno`, `abcdefghijklmnop`, `abcdefghijklmnopq` FROM users WHERE userid = 1",
            "SELECT `accounts`.`name` FROM `accounts` WHERE `accounts`.`name` = 'x'",
            // The closing quote after the last whole word.
            "SELECT a FROM users WHERE `userid`=1",
            "SELECT a FROM `users` u WHERE `u`.`userid`=?",
            // Bytes >= 0x80 start and continue unquoted names.
            "SELECT \u{e9}t\u{e9}, `caf\u{e9}`, t.\u{fc}ber FROM users t WHERE t.userid = 1",
            "SELECT a FROM users \u{e9} WHERE \u{e9}.userid = 1",
            // Keywords next to the bytes that end them.
            "SELECT`a`FROM`users`WHERE`userid`=1",
            "SELECT*FROM users WHERE userid=1",
        ];
        for sql in answered {
            assert!(agrees(sql.as_bytes(), &s), "{sql}");
        }
        let refused = [
            // A doubled backquote in any name: the full parser unescapes.
            "SELECT `a``b` FROM users WHERE userid = 1",
            "SELECT `abcdefg``` FROM users WHERE userid = 1",
            "SELECT a FROM `users``` WHERE userid = 1",
            "SELECT a FROM `us``ers` WHERE userid = 1",
            "SELECT a FROM users WHERE `userid``` = 1",
            "SELECT a FROM users u WHERE `u```.userid = 1",
            "SELECT `` FROM users WHERE userid = 1",
            // A keyword's bytes followed by a name byte: another word.
            "SELECTa FROM users WHERE userid = 1",
            "SELECT_ a FROM users WHERE userid = 1",
            "SELECT a FROMx users WHERE userid = 1",
            "SELECT a FROM1 users WHERE userid = 1",
            "SELECT a FROM users WHEREx userid = 1",
            "SELECT a FROM users u WHERE$ userid = 1",
            "SELECT a FROM users WHERE\u{e9} userid = 1",
            // FROM right before a `.` is still the keyword.
            "SELECT a,from.b FROM users WHERE userid = 1",
            // Cut short.
            "SELEC",
            "SELECT",
            "SELECT a FROM",
            "SELECT a FROM users WHERE",
            "SELECT a FROM users WHERE `userid",
            // A non-ASCII byte is no case of an ASCII letter.
            "SELECT a FROM us\u{c9}rs WHERE userid = 1",
            "SELECT a FROM users WHERE user\u{cd}d = 1",
        ];
        for sql in refused {
            assert!(!agrees(sql.as_bytes(), &s), "{sql}");
        }
        // `_` (0x5f) and DEL (0x7f) differ in bit 5 only, as a letter's
        // two cases do: no match either way, in the table and key names.
        let rule = TableRule::Sharded {
            key: "order_id".into(),
            key_type: KeyType::Int,
            missing_key: MissingKey::Error,
        };
        let s = Schema::new().with_table("line_items", rule);
        assert!(agrees(
            b"SELECT a FROM `LINE_ITEMS` WHERE `ORDER_ID` = 1",
            &s
        ));
        assert!(!agrees(
            b"SELECT a FROM `line\x7fitems` WHERE order_id = 1",
            &s
        ));
        assert!(!agrees(
            b"SELECT a FROM line_items WHERE `order\x7fid` = 1",
            &s
        ));
    }

    /// Point selects built at random from names of 1 to 20 bytes (quoted
    /// or not, in any case, with bytes >= 0x80), qualifiers, aliases and
    /// literals: the fast path agrees with the full parser on each, and
    /// answers on almost all (a random name may spell a keyword).
    #[test]
    fn generated_point_selects_agree_with_the_full_parser() {
        let s = schema();
        let mut rng = crate::test_rng::XorShift::new(0x853c_49e6_748f_ea9b);
        let mut next = |n: usize| rng.below(n);
        let case = |w: &str, r: usize| -> String {
            w.bytes()
                .enumerate()
                .map(|(i, c)| match (r >> (i % 16)) & 1 {
                    1 => c.to_ascii_uppercase() as char,
                    _ => c as char,
                })
                .collect()
        };
        let name = |next: &mut dyn FnMut(usize) -> usize| -> Vec<u8> {
            let len = 1 + next(20);
            let mut n: Vec<u8> = (0..len)
                .map(|_| b"abcxyzABCXYZ_$09\xc3\xa9\xff"[next(19)])
                .collect();
            if n[0].is_ascii_digit() {
                n[0] = b'c';
            }
            n
        };
        let quote = |n: Vec<u8>, q: bool| -> Vec<u8> {
            match q {
                true => [&b"`"[..], &n, b"`"].concat(),
                false => n,
            }
        };
        let (mut total, mut answered) = (0, 0);
        for _ in 0..20_000 {
            let (table, key) = [
                ("users", "userid"),
                ("orders", "userid"),
                ("accounts", "name"),
            ][next(3)];
            let table = case(table, next(1 << 16)).into_bytes();
            let key = case(key, next(1 << 16)).into_bytes();
            let alias = match next(3) {
                0 => None,
                _ => Some(name(&mut next)),
            };
            let qualifier = alias.clone().unwrap_or(table.clone());
            let mut sql = b"SELECT ".to_vec();
            for c in 0..1 + next(4) {
                if c > 0 {
                    sql.extend_from_slice([&b", "[..], b","][next(2)]);
                }
                if next(3) == 0 {
                    sql.extend(quote(qualifier.clone(), next(2) == 0));
                    sql.push(b'.');
                }
                match next(8) {
                    0 => sql.push(b'*'),
                    _ => sql.extend(quote(name(&mut next), next(2) == 0)),
                }
            }
            sql.extend_from_slice(b" FROM ");
            if next(4) == 0 {
                sql.extend_from_slice(b"db.");
            }
            sql.extend(quote(table.clone(), next(2) == 0));
            if let Some(a) = &alias {
                sql.extend_from_slice([&b" "[..], b" AS ", b" as "][next(3)]);
                sql.extend(quote(a.clone(), next(2) == 0));
            }
            sql.extend_from_slice(b" WHERE ");
            match next(3) {
                0 => {}
                1 => {
                    sql.extend(quote(qualifier.clone(), next(2) == 0));
                    sql.push(b'.');
                }
                _ if alias.is_none() => {
                    sql.extend_from_slice(b"db.");
                    sql.extend(quote(table.clone(), next(2) == 0));
                    sql.push(b'.');
                }
                _ => {}
            }
            sql.extend(quote(key, next(2) == 0));
            sql.extend_from_slice([&b" = 42"[..], b"=?", b" = 'k'", b"='k\xc3\xa9'"][next(4)]);
            total += 1;
            answered += usize::from(agrees(&sql, &s));
        }
        assert!(answered * 100 > total * 95, "{answered} of {total}");
    }

    /// Every seed with one byte changed, inserted or removed (from a set of
    /// bytes that matter to the lexer), at every position: the fast path
    /// agrees with the full parser whenever it answers.
    #[test]
    fn mutated_point_selects_agree_with_the_full_parser() {
        let s = schema();
        let bytes = b" \t\x0b.,`'\"\\?*-#/;()=<>!@01Aa_\x80xNn";
        let mut answered = 0;
        for seed in SEEDS {
            let seed = seed.as_bytes();
            for i in 0..=seed.len() {
                for &b in bytes {
                    let mut m = seed.to_vec();
                    m.insert(i, b);
                    answered += usize::from(agrees(&m, &s));
                    if i < seed.len() {
                        let mut m = seed.to_vec();
                        m[i] = b;
                        answered += usize::from(agrees(&m, &s));
                    }
                }
                if i < seed.len() {
                    let mut m = seed.to_vec();
                    m.remove(i);
                    answered += usize::from(agrees(&m, &s));
                }
            }
        }
        // The mutations still exercise the fast path, not only its refusals.
        assert!(answered > 1000, "{answered}");
    }
}
