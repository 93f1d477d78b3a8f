//! ROW_COUNT() and FOUND_ROWS() follow the client, not the connection.
//!
//! The server keeps both per connection: what the last statement affected,
//! and how many rows the last result set had. A client whose next
//! statement runs on another connection (transaction mode lends a new one;
//! any mode switches shards) would read someone else's values. So the
//! session keeps its own, from the replies it relayed (`ReplyTracker`
//! counts them as the server does), and remembers which connection's values
//! they are: a marker every connection carries, renewed whenever a command
//! that is not this client's runs on it. When a statement that reads them
//! runs where the marker differs, each read in its first statement is
//! replaced by the value: `IFNULL(7, ROW_COUNT())`, which the server types
//! exactly as it types ROW_COUNT() itself (BIGINT, NOT NULL), named as the
//! client wrote it when it is a select item of its own.
//!
//! LAST_INSERT_ID() is not rewritten: the OK packet's insert id is not
//! always its value (an explicit AUTO_INCREMENT value is reported but does
//! not change it); it pins the connection instead (`pins.rs`).

use super::words::{Word, Words};

/// The client's ROW_COUNT() and FOUND_ROWS(), and where the server holds
/// them too.
#[derive(Debug)]
pub struct Counters {
    row_count: i64,
    found_rows: u64,
    /// The marker of the connection whose ROW_COUNT() is this client's.
    row_count_on: Option<u64>,
    /// Likewise for FOUND_ROWS(), apart: a statement without a result set
    /// leaves it as it was, and on a borrowed connection that may be the
    /// last borrower's.
    found_rows_on: Option<u64>,
}

impl Default for Counters {
    fn default() -> Counters {
        // A new connection: the server says -1 and 0 (FOUND_ROWS() of a
        // fresh connection is whatever its thread last had: no client can
        // rely on it).
        Counters {
            row_count: -1,
            found_rows: 0,
            row_count_on: None,
            found_rows_on: None,
        }
    }
}

impl Counters {
    /// A statement's reply ended on the connection marked `marker`.
    pub fn after_reply(&mut self, row_count: Option<i64>, found_rows: Option<u64>, marker: u64) {
        if let Some(n) = row_count {
            self.row_count = n;
            self.row_count_on = Some(marker);
        }
        if let Some(n) = found_rows {
            self.found_rows = n;
            self.found_rows_on = Some(marker);
        }
    }

    /// The proxy answered OK itself (a BEGIN held back, a COMMIT of
    /// nothing): ROW_COUNT() is 0 as after any OK, and no server holds it.
    pub fn answered_ok(&mut self) {
        self.row_count = 0;
        self.row_count_on = None;
    }

    /// COM_RESET_CONNECTION, COM_CHANGE_USER: the server starts over, and
    /// answered OK (ROW_COUNT() is 0 after either, as on a direct
    /// connection: tests/pooling.rs compares).
    pub fn reset(&mut self) {
        *self = Counters {
            row_count: 0,
            ..Counters::default()
        };
    }

    /// Whether the connection marked `marker` holds this client's values.
    pub fn held_by(&self, marker: u64) -> bool {
        self.row_count_on == Some(marker) && self.found_rows_on == Some(marker)
    }

    /// Whether this client's statements were the last to set a counter on
    /// the connection marked `marker` (it is still in this client's
    /// stretch of it).
    pub fn marked(&self, marker: u64) -> bool {
        self.row_count_on == Some(marker) || self.found_rows_on == Some(marker)
    }

    /// `sql` with its reads replaced by this client's values; None when it
    /// reads none (nothing to change).
    pub fn substitute(&self, sql: &[u8], backslash_escapes: bool) -> Option<Vec<u8>> {
        substitute(sql, self.row_count, self.found_rows, backslash_escapes)
    }
}

/// Whether `sql` may read ROW_COUNT() or FOUND_ROWS(): a quick look, run
/// on every COM_QUERY, before the word scan. It looks at the underscores
/// only (few in most statements), not at every `r` and `f`.
pub fn may_read(sql: &[u8]) -> bool {
    let around = |i: usize, before: &[u8], after: &[u8]| {
        i >= before.len()
            && sql[i - before.len()..i].eq_ignore_ascii_case(before)
            && sql
                .get(i + 1..i + 1 + after.len())
                .is_some_and(|a| a.eq_ignore_ascii_case(after))
    };
    memchr::memchr_iter(b'_', sql)
        .any(|i| around(i, b"row", b"count") || around(i, b"found", b"rows"))
}

/// Statements whose reads of the counters are evaluated when they run.
/// Others may store the expression (CREATE PROCEDURE / VIEW / TRIGGER ...)
/// and must keep it as written.
const EVALUATED: [&[u8]; 10] = [
    b"SELECT", b"DO", b"SET", b"INSERT", b"REPLACE", b"UPDATE", b"DELETE", b"VALUES", b"WITH",
    b"CALL",
];

/// See `Counters::substitute`. Only the first statement of a multi-statement
/// is rewritten: in the later ones, the counters are those of the statement
/// before, in the same text.
fn substitute(
    sql: &[u8],
    row_count: i64,
    found_rows: u64,
    backslash_escapes: bool,
) -> Option<Vec<u8>> {
    if !may_read(sql) {
        return None;
    }
    let mut words = Words::new(sql);
    if !backslash_escapes {
        words = words.without_backslash_escapes();
    }
    let mut head: Option<&[u8]> = None;
    let mut depth = 0usize;
    // The word before the current one, at this depth: SELECT or `,` makes
    // a read the start of a select item.
    let mut item_start = false;
    let mut after_dot = false;
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    while let Some(word) = words.next() {
        let end_of_word = words.at();
        match word {
            Word::Semicolon => break,
            Word::Name(name) => {
                let function = if name.eq_ignore_ascii_case(b"ROW_COUNT") {
                    Some(row_count.to_string())
                } else if name.eq_ignore_ascii_case(b"FOUND_ROWS") {
                    Some(found_rows.to_string())
                } else {
                    None
                };
                let evaluated =
                    head.is_some_and(|h| EVALUATED.iter().any(|e| h.eq_ignore_ascii_case(e)));
                if let (Some(value), false, true) = (function, after_dot, evaluated) {
                    let name_start = end_of_word - name.len();
                    let mut probe = Words::new(sql);
                    probe.seek(end_of_word);
                    let call_end = match (probe.next(), probe.next()) {
                        (Some(Word::Punct(b'(')), Some(Word::Punct(b')'))) => Some(probe.at()),
                        _ => None,
                    };
                    if let Some(call_end) = call_end {
                        let item_end = match probe.next() {
                            None | Some(Word::Semicolon) | Some(Word::Punct(b',')) => true,
                            Some(Word::Name(next)) => next.eq_ignore_ascii_case(b"FROM"),
                            _ => false,
                        };
                        let written = &sql[name_start..call_end];
                        let buf = out.get_or_insert_with(|| Vec::with_capacity(sql.len() + 48));
                        buf.extend_from_slice(&sql[copied..name_start]);
                        buf.extend_from_slice(b"IFNULL(");
                        buf.extend_from_slice(value.as_bytes());
                        buf.extend_from_slice(b", ");
                        buf.extend_from_slice(name);
                        buf.extend_from_slice(b"())");
                        if item_start && item_end && depth == 0 {
                            // The column keeps the name the server gives
                            // the read: its text.
                            buf.extend_from_slice(b" AS `");
                            for &b in written {
                                if b == b'`' {
                                    buf.push(b'`');
                                }
                                buf.push(b);
                            }
                            buf.push(b'`');
                        }
                        copied = call_end;
                        words.seek(call_end);
                        item_start = false;
                        after_dot = false;
                        continue;
                    }
                }
                if head.is_none() {
                    head = Some(name);
                }
                item_start = depth == 0 && name.eq_ignore_ascii_case(b"SELECT");
                after_dot = false;
            }
            Word::Punct(b) => {
                match b {
                    b'(' => depth += 1,
                    b')' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                item_start = b == b',' && depth == 0;
                after_dot = b == b'.';
            }
            Word::UserVariable | Word::Assign | Word::Other => {
                item_start = false;
                after_dot = false;
            }
        }
    }
    let mut buf = out?;
    buf.extend_from_slice(&sql[copied..]);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(sql: &str) -> Option<String> {
        substitute(sql.as_bytes(), 7, 42, true).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn a_read_that_is_a_select_item_keeps_its_column_name() {
        assert_eq!(
            sub("SELECT ROW_COUNT()").as_deref(),
            Some("SELECT IFNULL(7, ROW_COUNT()) AS `ROW_COUNT()`")
        );
        assert_eq!(
            sub("select found_rows(), row_count();").as_deref(),
            Some(
                "select IFNULL(42, found_rows()) AS `found_rows()`, \
                 IFNULL(7, row_count()) AS `row_count()`;"
            )
        );
        assert_eq!(
            sub("SELECT ROW_COUNT( ) FROM dual").as_deref(),
            Some("SELECT IFNULL(7, ROW_COUNT()) AS `ROW_COUNT( )` FROM dual")
        );
    }

    #[test]
    fn an_aliased_or_nested_read_gets_no_alias() {
        assert_eq!(
            sub("SELECT ROW_COUNT() AS n").as_deref(),
            Some("SELECT IFNULL(7, ROW_COUNT()) AS n")
        );
        assert_eq!(
            sub("SELECT ROW_COUNT() + 1, IF(FOUND_ROWS() > 0, 1, 0)").as_deref(),
            Some("SELECT IFNULL(7, ROW_COUNT()) + 1, IF(IFNULL(42, FOUND_ROWS()) > 0, 1, 0)")
        );
        assert_eq!(
            sub("INSERT INTO log VALUES (ROW_COUNT())").as_deref(),
            Some("INSERT INTO log VALUES (IFNULL(7, ROW_COUNT()))")
        );
        assert_eq!(
            sub("SET @n = ROW_COUNT()").as_deref(),
            Some("SET @n = IFNULL(7, ROW_COUNT())")
        );
    }

    #[test]
    fn reads_in_strings_comments_later_statements_and_stored_code_stay() {
        for sql in [
            "SELECT 'ROW_COUNT()'",
            "SELECT 1 /* FOUND_ROWS() */",
            "SELECT 1 -- ROW_COUNT()\n",
            "SELECT `ROW_COUNT()` FROM t",
            "UPDATE t SET a = 1; SELECT ROW_COUNT()",
            "CREATE PROCEDURE p() SELECT ROW_COUNT()",
            "CREATE VIEW v AS SELECT FOUND_ROWS()",
            "SELECT db.ROW_COUNT()",
            "SELECT row_count_total FROM t",
            "SELECT ROW_COUNT",
        ] {
            assert_eq!(sub(sql), None, "{sql}");
        }
        // Only the first statement's reads are the previous statement's.
        assert_eq!(
            sub("SELECT ROW_COUNT(); SELECT ROW_COUNT()").as_deref(),
            Some("SELECT IFNULL(7, ROW_COUNT()) AS `ROW_COUNT()`; SELECT ROW_COUNT()")
        );
        // An executable comment is code.
        assert_eq!(
            sub("SELECT /*!ROW_COUNT()*/").as_deref(),
            Some("SELECT /*!IFNULL(7, ROW_COUNT()) AS `ROW_COUNT()`*/")
        );
    }

    #[test]
    fn strings_follow_the_sessions_escaping() {
        // With backslash escapes the string runs to the last quote.
        let sql = r"SELECT 'a\', ROW_COUNT() , 'b'";
        assert_eq!(sub(sql), None);
        // Without, `'a\'` ends at its second quote and the read is code.
        let rewritten = substitute(sql.as_bytes(), 7, 42, false).unwrap();
        assert_eq!(
            rewritten,
            br"SELECT 'a\', IFNULL(7, ROW_COUNT()) AS `ROW_COUNT()` , 'b'".to_vec()
        );
    }

    #[test]
    fn the_quick_look_finds_every_spelling() {
        for sql in [
            "SELECT ROW_COUNT()",
            "select found_rows()",
            "x row_count",
            "Found_Rows",
        ] {
            assert!(may_read(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "_count",
            "row_",
            "found_row",
            "SELECT user_id FROM t",
            "",
        ] {
            assert!(!may_read(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn counters_follow_replies_and_markers() {
        let mut c = Counters::default();
        assert!(!c.held_by(1));
        // An UPDATE on a borrowed connection: its FOUND_ROWS() is still
        // the last borrower's.
        c.after_reply(Some(3), None, 1);
        assert!(!c.held_by(1) && c.marked(1));
        c.after_reply(Some(-1), Some(4), 1);
        assert!(c.held_by(1) && !c.held_by(2));
        c.after_reply(Some(-1), Some(5), 2);
        assert_eq!((c.row_count, c.found_rows), (-1, 5));
        c.after_reply(None, None, 2);
        assert_eq!((c.row_count, c.found_rows), (-1, 5));
        // Then a statement without a result set on the same connection:
        // both are still this client's there.
        c.after_reply(Some(2), None, 2);
        assert!(c.held_by(2));
        c.answered_ok();
        assert_eq!(c.row_count, 0);
        assert!(!c.held_by(2));
        c.reset();
        assert_eq!((c.row_count, c.found_rows), (0, 0));
    }
}
