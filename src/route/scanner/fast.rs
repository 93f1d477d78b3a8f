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
//! it on point selects mutated byte by byte.

use smallvec::smallvec;

use super::lexer::{keyword, Kw};
use super::{introducer, Analysis, StatementKind, Target};
use crate::route::schema::{Schema, TableRule};
use crate::route::value::KeyValue;
use std::borrow::Cow;

// Byte classes of the fast path: one table load per byte decides.
/// Anything else: the full parser's.
const OTHER: u8 = 0;
/// `my_isspace`: the bytes the server skips between tokens.
const SPACE: u8 = 1;
/// A byte that may start an unquoted name: a letter, `_`, `$`, >= 0x80
/// (MariaDB's `ident_map` for ASCII-compatible character sets).
const NAME: u8 = 2;
/// `0-9`: continues a name, but starts a number.
const DIGIT: u8 = 3;
const BACKQUOTE: u8 = 4;
const DOT: u8 = 5;
/// `,` and `*`: in the column list, read as themselves.
const LIST: u8 = 6;

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

#[inline(always)]
fn class(sql: &[u8], i: usize) -> u8 {
    match sql.get(i) {
        Some(&c) => CLASS[c as usize],
        None => OTHER,
    }
}

/// The first backquote at or after `i`. Names are short: one 8-byte word
/// mostly holds the closing quote, where a byte loop or a `memchr` call
/// would cost several times more.
#[inline(always)]
fn backquote_from(sql: &[u8], mut i: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = LO * b'`' as u64;
    while let Some(word) = sql.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w) ^ QUOTES;
        // A zero byte of x is a backquote; the lowest flagged byte is the
        // first one (borrows only flag bytes above a true zero).
        let z = x.wrapping_sub(LO) & !x & HI;
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let rest = sql.get(i..)?;
    rest.iter().position(|&c| c == b'`').map(|j| i + j)
}

/// A name as the fast path reads it: an unquoted identifier that does not
/// start with a digit, or a backquoted one that is not empty and holds no
/// doubled backquote. `start..end` is its text, inside the quotes.
#[derive(Clone, Copy)]
struct Name {
    start: usize,
    end: usize,
    quoted: bool,
}

/// Whether `word` spells `lower` (a lowercase keyword) in any case. Setting
/// bit 5 maps exactly a letter's two cases, and only them, to its
/// lowercase.
#[inline(always)]
fn is_kw(word: &[u8], lower: &[u8]) -> bool {
    word.len() == lower.len() && word.iter().zip(lower).all(|(&a, &b)| a | 0x20 == b)
}

/// ASCII case-insensitive equality, trying plain equality first: names are
/// mostly written in the case they are compared with.
#[inline]
fn same_name(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a == b || a.eq_ignore_ascii_case(b))
}

struct Cursor<'a> {
    sql: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn skip_space(&mut self) {
        while class(self.sql, self.pos) == SPACE {
            self.pos += 1;
        }
    }

    /// The name at the cursor, if there is one. A digit first makes a
    /// number or `12abc`; a lone x, b or n before a quote makes a hex, bit
    /// or national string: both end up in a position where the fast path
    /// expects no quote, and it gives up.
    #[inline(always)]
    fn name(&mut self) -> Option<Name> {
        let sql = self.sql;
        let start = self.pos;
        match class(sql, start) {
            NAME => {
                let mut end = start + 1;
                while matches!(class(sql, end), NAME | DIGIT) {
                    end += 1;
                }
                self.pos = end;
                Some(Name {
                    start,
                    end,
                    quoted: false,
                })
            }
            BACKQUOTE => {
                let body = start + 1;
                // Unterminated: the full parser's error.
                let end = backquote_from(sql, body)?;
                // Empty, or a doubled backquote inside: the full parser's.
                if end == body || sql.get(end + 1) == Some(&b'`') {
                    return None;
                }
                self.pos = end + 1;
                Some(Name {
                    start: body,
                    end,
                    quoted: true,
                })
            }
            _ => None,
        }
    }

    /// At a `.`: whether a name starts right after it (then the `.` is
    /// consumed). A `.` followed by anything else (a digit, a space, the
    /// end) is left for the caller, which gives up at it.
    #[inline(always)]
    fn dot(&mut self) -> bool {
        if class(self.sql, self.pos) == DOT
            && matches!(class(self.sql, self.pos + 1), NAME | BACKQUOTE)
        {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    #[inline(always)]
    fn text(&self, n: Name) -> &'a [u8] {
        &self.sql[n.start..n.end]
    }

    /// Whether `n` is an unquoted word the lexer reads as a keyword the
    /// parser acts on (quoted names never are).
    #[inline]
    fn is_keyword(&self, n: Name) -> bool {
        !n.quoted && keyword(self.text(n)) != Kw::None
    }

    #[inline(always)]
    fn is_word(&self, n: Name, lower: &[u8]) -> bool {
        !n.quoted && is_kw(self.text(n), lower)
    }
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
pub(super) fn point_select<'a>(sql: &'a [u8], schema: &'a Schema) -> Option<Analysis<'a>> {
    let mut c = Cursor { sql, pos: 0 };
    c.skip_space();
    let select = c.name()?;
    if !c.is_word(select, b"select") {
        return None;
    }

    // The column list: the full parser only counts strays in it and stops
    // at FROM (or notes a set operation), so any names, dots, commas and
    // `*` read the same. One class lookup per byte; a name costs its bytes
    // and, when not a qualifier, a one-word Bloom filter probe.
    let mut after_dot = false;
    loop {
        c.skip_space();
        if class(sql, c.pos) == LIST {
            c.pos += 1;
            after_dot = false;
            continue;
        }
        let n = c.name()?;
        if !n.quoted && !after_dot {
            // The lexer gives a keyword to every word not right after a
            // `.` (`from.x` starts the FROM clause).
            let w = c.text(n);
            match w.len() {
                4 if is_kw(w, b"from") => break,
                5 if is_kw(w, b"union") || is_kw(w, b"minus") => return None,
                6 if is_kw(w, b"except") => return None,
                9 if is_kw(w, b"intersect") => return None,
                _ => {}
            }
        }
        if class(sql, c.pos) == DOT {
            // A qualifier (never a stray): `t.col`, `t.*`.
            after_dot = c.dot();
            if !after_dot {
                if sql.get(c.pos + 1) != Some(&b'*') {
                    return None;
                }
                c.pos += 1;
            }
        } else {
            after_dot = false;
            if sharded(schema, c.text(n)) {
                return None;
            }
        }
    }

    // The table, maybe `db.`-qualified; a keyword there (DUAL, a join
    // word) is the full parser's.
    c.skip_space();
    let first = c.name()?;
    if c.is_keyword(first) {
        return None;
    }
    let table = if c.dot() { c.name()? } else { first };
    if class(sql, c.pos) == DOT {
        return None;
    }
    let Some(TableRule::Sharded { key, .. }) = schema.table(c.text(table)) else {
        // Global and unknown tables: rare on the hot path, and their
        // WHERE clause may be anything.
        return None;
    };

    // `[AS] alias`, then WHERE.
    c.skip_space();
    let mut alias = None;
    let mut word = c.name()?;
    if !c.is_word(word, b"where") {
        let mut a = word;
        if c.is_word(word, b"as") {
            c.skip_space();
            a = c.name()?;
        }
        // Only a plain name: a keyword may be a join, a hint, PARTITION.
        if class(sql, c.pos) == DOT || c.is_keyword(a) || sharded(schema, c.text(a)) {
            return None;
        }
        alias = Some(a);
        c.skip_space();
        word = c.name()?;
        if !c.is_word(word, b"where") {
            return None;
        }
    }

    // `[[db.]t.]key`: up to three parts, as the full parser's colref.
    c.skip_space();
    let mut parts = [c.name()?; 3];
    let mut n = 1;
    while c.dot() {
        if n == 3 {
            return None;
        }
        parts[n] = c.name()?;
        n += 1;
    }
    let col = parts[n - 1];
    if class(sql, c.pos) == DOT {
        return None;
    }
    let text = |n: Name| c.text(n);
    let resolves = same_name(text(col), key.as_bytes())
        && match n {
            1 => true,
            2 => same_name(text(parts[0]), text(alias.unwrap_or(table))),
            _ => alias.is_none() && same_name(text(parts[1]), text(table)),
        };
    if !resolves || sharded(schema, text(col)) {
        return None;
    }
    // NULL, NOT, CASE, an introducer...: not a column there. (Checked
    // last: the cheap comparisons above settle most statements.)
    let head = parts[0];
    if !head.quoted
        && (c.is_keyword(head)
            || (text(head).first() == Some(&b'_') && introducer(text(head)).is_some()))
    {
        return None;
    }

    // `= literal`, and nothing after it.
    c.skip_space();
    if sql.get(c.pos) != Some(&b'=') {
        return None;
    }
    c.pos += 1;
    c.skip_space();
    let start = c.pos;
    let (value, placeholders) = match *sql.get(start)? {
        b'?' => {
            c.pos += 1;
            (KeyValue::Placeholder(0), 1)
        }
        b'0'..=b'9' => {
            c.pos += 1;
            while class(sql, c.pos) == DIGIT {
                c.pos += 1;
            }
            // `42.5`, `4e2`, `0x2A`, `12abc`: the lexer's number rules.
            if matches!(class(sql, c.pos), DOT | NAME) {
                return None;
            }
            (KeyValue::Number(Cow::Borrowed(&sql[start..c.pos])), 0)
        }
        b'\'' => {
            let body = start + 1;
            // A backslash is an escape or, under NO_BACKSLASH_ESCAPES, not:
            // either way the full parser's; so is a doubled quote. Key
            // strings are short: a plain loop beats a search call.
            let mut end = body;
            loop {
                match sql.get(end) {
                    Some(b'\'') => break,
                    Some(b'\\') | None => return None,
                    Some(_) => end += 1,
                }
            }
            if sql.get(end + 1) == Some(&b'\'') {
                return None;
            }
            c.pos = end + 1;
            (KeyValue::Str(Cow::Borrowed(&sql[body..end])), 0)
        }
        _ => return None,
    };
    c.skip_space();
    if c.pos != sql.len() {
        return None;
    }
    Some(Analysis {
        kind: StatementKind::Select,
        target: Target::Keys {
            table: c.text(table),
            column: key.as_bytes(),
            values: smallvec![value],
        },
        placeholders,
        unsharded_tables: false,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::schema;
    use super::super::{analyze_reference, ScanOptions};
    use super::*;

    /// The fast path agrees with the full parser whenever it answers, under
    /// every option set; returns whether it answered.
    fn agrees(sql: &[u8], schema: &Schema) -> bool {
        let fast = point_select(sql, schema);
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
    fn backquote_from_matches_the_naive_search() {
        let mut seed = 0x2545_f491_u64;
        for len in 0..40usize {
            for _ in 0..200 {
                let h: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        [b'`', b'a', b'`' ^ 0x80, 0, 0xff, b'_', b'`' + 1, b'`' - 1]
                            [(seed % 8) as usize]
                    })
                    .collect();
                for i in 0..=len {
                    let naive = h[i..].iter().position(|&c| c == b'`').map(|j| i + j);
                    assert_eq!(backquote_from(&h, i), naive, "{h:?} from {i}");
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
