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

use super::lexer::{find2, ident_run, is_ident_byte, keyword, skip_space, Kw};
use super::{introducer, Analysis, StatementKind, Target};
use crate::route::schema::{Schema, TableRule};
use crate::route::value::KeyValue;
use std::borrow::Cow;

/// A name as the fast path reads it: an unquoted identifier that does not
/// start with a digit, or a backquoted one without doubled backquotes.
#[derive(Clone, Copy)]
struct Name {
    /// The whole token, quotes included.
    start: usize,
    end: usize,
    quoted: bool,
}

struct Cursor<'a> {
    sql: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn byte(&self) -> Option<u8> {
        self.sql.get(self.pos).copied()
    }

    #[inline]
    fn skip_space(&mut self) {
        self.pos = skip_space(self.sql, self.pos);
    }

    /// The name at the cursor, if there is one.
    #[inline(always)]
    fn name(&mut self) -> Option<Name> {
        let start = self.pos;
        let c = self.byte()?;
        if c == b'`' {
            let body = start + 1;
            let len = find2(&self.sql[body..], b'`', b'`')?;
            let end = body + len + 1;
            // Empty, or a doubled backquote inside: the full parser's job.
            if len == 0 || self.sql.get(end) == Some(&b'`') {
                return None;
            }
            self.pos = end;
            return Some(Name {
                start,
                end,
                quoted: true,
            });
        }
        // A digit first makes a number or `12abc`; a lone x, b or n before a
        // quote makes a hex, bit or national string: both end up in a
        // position where the fast path expects no quote, and it gives up.
        if !is_ident_byte(c) || c.is_ascii_digit() {
            return None;
        }
        let end = ident_run(self.sql, start + 1);
        self.pos = end;
        Some(Name {
            start,
            end,
            quoted: false,
        })
    }

    /// Whether a qualifying `.` directly follows: then it is consumed and
    /// true is returned. A `.` that is not directly followed by a name
    /// start (a digit, a space, the end) is not read here, and the caller
    /// gives up at it.
    #[inline(always)]
    fn dot(&mut self) -> bool {
        if self.byte() != Some(b'.') {
            return false;
        }
        match self.sql.get(self.pos + 1) {
            Some(&d) if d == b'`' || (is_ident_byte(d) && !d.is_ascii_digit()) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// The bytes of a name, inside its quotes.
    fn text(&self, n: Name) -> &'a [u8] {
        if n.quoted {
            &self.sql[n.start + 1..n.end - 1]
        } else {
            &self.sql[n.start..n.end]
        }
    }

    /// The keyword an unquoted name spells (`Kw::None` for quoted ones,
    /// as the lexer has it).
    fn kw(&self, n: Name) -> Kw {
        if n.quoted {
            Kw::None
        } else {
            keyword(self.text(n))
        }
    }

    fn is_word(&self, n: Name, upper: &[u8]) -> bool {
        !n.quoted && is_keyword(self.text(n), upper)
    }
}

/// Whether `word` spells `upper` (uppercase letters) in any case. Clearing
/// bit 5 maps exactly a letter's two cases, and only them, to its
/// uppercase.
#[inline]
fn is_keyword(word: &[u8], upper: &[u8]) -> bool {
    word.len() == upper.len()
        && (word == upper || word.iter().zip(upper).all(|(&a, &b)| a & !0x20 == b))
}

/// ASCII case-insensitive equality, trying plain equality first: names are
/// mostly written in the case they are compared with.
#[inline]
fn same_name(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a == b || a.eq_ignore_ascii_case(b))
}

/// Whether `n` spells a sharded table: where the full parser would count it
/// as a stray (a name not directly followed by a qualifying `.`), it
/// refuses, and the fast path leaves that to it.
#[inline(always)]
fn sharded(schema: &Schema, c: &Cursor<'_>, n: Name) -> bool {
    let name = c.text(n);
    schema.may_be_sharded(name) && matches!(schema.table(name), Some(TableRule::Sharded { .. }))
}

/// `Some` with the full parser's answer when the statement has the shape
/// above; `None` when the full parser must decide.
pub(super) fn point_select<'a>(sql: &'a [u8], schema: &'a Schema) -> Option<Analysis<'a>> {
    let mut c = Cursor { sql, pos: 0 };
    c.skip_space();
    let select = c.name()?;
    if !c.is_word(select, b"SELECT") {
        return None;
    }

    // The column list: the full parser only counts strays in it and stops
    // at FROM (or notes a set operation), so any names, dots, commas and
    // `*` read the same.
    let mut after_dot = false;
    loop {
        c.skip_space();
        match c.byte()? {
            b',' | b'*' => {
                c.pos += 1;
                after_dot = false;
            }
            _ => {
                let n = c.name()?;
                if !n.quoted && !after_dot {
                    // The lexer gives a keyword to every word not right
                    // after a `.` (`from.x` starts the FROM clause).
                    let w = c.text(n);
                    if is_keyword(w, b"FROM") {
                        break;
                    }
                    if [&b"UNION"[..], b"EXCEPT", b"INTERSECT", b"MINUS"]
                        .iter()
                        .any(|k| is_keyword(w, k))
                    {
                        return None;
                    }
                }
                if c.byte() == Some(b'.') {
                    // A qualifier (never a stray): `t.col`, `t.*`.
                    after_dot = c.dot();
                    if !after_dot {
                        if c.sql.get(c.pos + 1) != Some(&b'*') {
                            return None;
                        }
                        c.pos += 1;
                    }
                } else {
                    after_dot = false;
                    if sharded(schema, &c, n) {
                        return None;
                    }
                }
            }
        }
    }

    // The table, maybe `db.`-qualified; a keyword there (DUAL, a join
    // word) is the full parser's.
    c.skip_space();
    let first = c.name()?;
    if c.kw(first) != Kw::None {
        return None;
    }
    let table = if c.dot() { c.name()? } else { first };
    if c.byte() == Some(b'.') {
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
    if !c.is_word(word, b"WHERE") {
        let mut a = word;
        if c.is_word(word, b"AS") {
            c.skip_space();
            a = c.name()?;
        }
        // Only a plain name: a keyword may be a join, a hint, PARTITION.
        if c.kw(a) != Kw::None || c.byte() == Some(b'.') || sharded(schema, &c, a) {
            return None;
        }
        alias = Some(a);
        c.skip_space();
        word = c.name()?;
        if !c.is_word(word, b"WHERE") {
            return None;
        }
    }

    // `[[db.]t.]key`: up to three parts, as the full parser's colref.
    c.skip_space();
    let mut parts = [c.name()?; 3];
    let head = parts[0];
    if !head.quoted && (c.kw(head) != Kw::None || introducer(c.text(head)).is_some()) {
        // NULL, NOT, CASE, an introducer...: not a column there.
        return None;
    }
    let mut n = 1;
    while c.dot() {
        if n == 3 {
            return None;
        }
        parts[n] = c.name()?;
        n += 1;
    }
    let col = parts[n - 1];
    if c.byte() == Some(b'.') || sharded(schema, &c, col) {
        return None;
    }
    let same = |a: Name, b: Name| same_name(c.text(a), c.text(b));
    let resolves = same_name(c.text(col), key.as_bytes())
        && match n {
            1 => true,
            2 => same(parts[0], alias.unwrap_or(table)),
            _ => alias.is_none() && same(parts[1], table),
        };
    if !resolves {
        return None;
    }

    // `= literal`, and nothing after it.
    c.skip_space();
    if c.byte()? != b'=' {
        return None;
    }
    c.pos += 1;
    c.skip_space();
    let start = c.pos;
    let (value, placeholders) = match c.byte()? {
        b'?' => {
            c.pos += 1;
            (KeyValue::Placeholder(0), 1)
        }
        b'0'..=b'9' => {
            while c.byte().is_some_and(|d| d.is_ascii_digit()) {
                c.pos += 1;
            }
            // `42.5`, `4e2`, `0x2A`, `12abc`: the lexer's number rules.
            if c.byte().is_some_and(|d| d == b'.' || is_ident_byte(d)) {
                return None;
            }
            (KeyValue::Number(Cow::Borrowed(&sql[start..c.pos])), 0)
        }
        b'\'' => {
            let body = start + 1;
            // A backslash is an escape or, under NO_BACKSLASH_ESCAPES, not:
            // either way the full parser's; so is a doubled quote.
            let len = find2(&sql[body..], b'\'', b'\\')?;
            let end = body + len;
            if sql[end] != b'\'' || sql.get(end + 1) == Some(&b'\'') {
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
    use super::super::{analyze_reference, ScanOptions};
    use super::*;
    use crate::route::schema::{KeyType, MissingKey};

    fn schema() -> Schema {
        let sharded = |key: &str, key_type| TableRule::Sharded {
            key: key.into(),
            key_type,
            missing_key: MissingKey::Error,
        };
        Schema::new()
            .with_table("users", sharded("userid", KeyType::Int))
            .with_table("orders", sharded("userid", KeyType::Int))
            .with_table("accounts", sharded("name", KeyType::StringCaseInsensitive))
            .with_table("countries", TableRule::Global)
    }

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
