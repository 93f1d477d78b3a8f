//! Session state that cannot move between backend connections, and what
//! ends it (transaction mode). While any of it exists the client keeps its
//! connection (it is "pinned"); each pin has a reason, counted when it
//! starts, and ends when its state ends.
//!
//! Statements are read with a small word scanner that skips strings and
//! comments (but reads `/*! ... */` as code). It errs on the side of
//! pinning: a pin that should not be there costs multiplexing, a missing
//! one would hand one client's state to another.

use smallvec::SmallVec;

/// Why a client keeps its backend connection between statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinReason {
    TemporaryTable,
    UserVariable,
    NamedLock,
    TableLock,
    SqlPrepare,
    Cursor,
    LongData,
    FoundRows,
    /// The last statement generated an AUTO_INCREMENT value: the next one
    /// may read it with LAST_INSERT_ID() (as ProxySQL's
    /// auto_increment_delay_multiplex, for one statement).
    LastInsertId,
    Handler,
    XaTransaction,
    /// A stored procedure ran: it may have set anything (session variables,
    /// user variables, temporary tables) out of the proxy's sight.
    StoredProcedure,
}

impl PinReason {
    pub const ALL: [PinReason; 12] = [
        PinReason::TemporaryTable,
        PinReason::UserVariable,
        PinReason::NamedLock,
        PinReason::TableLock,
        PinReason::SqlPrepare,
        PinReason::Cursor,
        PinReason::LongData,
        PinReason::FoundRows,
        PinReason::LastInsertId,
        PinReason::Handler,
        PinReason::XaTransaction,
        PinReason::StoredProcedure,
    ];

    /// The name used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            PinReason::TemporaryTable => "temporary_table",
            PinReason::UserVariable => "user_variable",
            PinReason::NamedLock => "get_lock",
            PinReason::TableLock => "lock_tables",
            PinReason::SqlPrepare => "sql_prepare",
            PinReason::Cursor => "cursor",
            PinReason::LongData => "long_data",
            PinReason::FoundRows => "sql_calc_found_rows",
            PinReason::LastInsertId => "last_insert_id",
            PinReason::Handler => "handler",
            PinReason::XaTransaction => "xa_transaction",
            PinReason::StoredProcedure => "stored_procedure",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What one COM_QUERY does to the pins: read before it runs, applied when
/// its reply is done (ends only if it succeeded: a failed UNLOCK TABLES
/// unlocked nothing).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effects {
    temp_created: u32,
    temp_dropped: u32,
    user_variable: bool,
    named_lock: bool,
    named_locks_released: bool,
    table_lock: bool,
    table_unlock: bool,
    prepared: SmallVec<[Vec<u8>; 1]>,
    deallocated: SmallVec<[Vec<u8>; 1]>,
    calc_found_rows: bool,
    handler: bool,
    xa_start: bool,
    xa_end: bool,
    call: bool,
}

/// The pinned state of one session.
#[derive(Debug, Default)]
pub struct Pins {
    temp_tables: u32,
    user_variables: bool,
    named_locks: bool,
    table_locks: bool,
    sql_prepared: Vec<Vec<u8>>,
    /// Statements executed with a cursor and not reset or closed since.
    pub cursors: SmallVec<[u32; 2]>,
    /// Statements with long data sent and not executed since.
    pub long_data: SmallVec<[u32; 2]>,
    /// Statements left before FOUND_ROWS() can no longer mean the last
    /// SQL_CALC_FOUND_ROWS.
    found_rows: u8,
    /// Likewise for LAST_INSERT_ID() after a generated AUTO_INCREMENT value.
    last_insert_id: u8,
    handler: bool,
    xa: bool,
    procedure: bool,
}

impl Pins {
    /// The first reason the client keeps its connection, if any.
    pub fn reason(&self) -> Option<PinReason> {
        PinReason::ALL.into_iter().find(|&r| self.has(r))
    }

    /// The reasons held now, one bit per `PinReason::index`.
    fn held(&self) -> u16 {
        PinReason::ALL
            .iter()
            .filter(|&&r| self.has(r))
            .fold(0, |bits, r| bits | 1 << r.index())
    }

    fn has(&self, reason: PinReason) -> bool {
        match reason {
            PinReason::TemporaryTable => self.temp_tables > 0,
            PinReason::UserVariable => self.user_variables,
            PinReason::NamedLock => self.named_locks,
            PinReason::TableLock => self.table_locks,
            PinReason::SqlPrepare => !self.sql_prepared.is_empty(),
            PinReason::Cursor => !self.cursors.is_empty(),
            PinReason::LongData => !self.long_data.is_empty(),
            PinReason::FoundRows => self.found_rows > 0,
            PinReason::LastInsertId => self.last_insert_id > 0,
            PinReason::Handler => self.handler,
            PinReason::XaTransaction => self.xa,
            PinReason::StoredProcedure => self.procedure,
        }
    }

    /// A statement finished (`ok`: without error; `generated_id`: it
    /// generated an AUTO_INCREMENT value). Returns the reasons that started
    /// with it, for the metrics.
    pub fn apply(&mut self, e: &Effects, ok: bool, generated_id: bool) -> SmallVec<[PinReason; 2]> {
        let before = self.held();
        self.found_rows = self.found_rows.saturating_sub(1);
        self.last_insert_id = self.last_insert_id.saturating_sub(1);
        if generated_id {
            self.last_insert_id = 1;
        }
        self.temp_tables += e.temp_created;
        self.user_variables |= e.user_variable;
        self.named_locks |= e.named_lock;
        self.table_locks |= e.table_lock;
        self.handler |= e.handler;
        self.xa |= e.xa_start;
        self.procedure |= e.call;
        for name in &e.prepared {
            if !self.sql_prepared.contains(name) {
                self.sql_prepared.push(name.clone());
            }
        }
        if e.calc_found_rows {
            self.found_rows = 1;
        }
        if ok {
            self.temp_tables = self.temp_tables.saturating_sub(e.temp_dropped);
            if e.named_locks_released {
                self.named_locks = false;
            }
            if e.table_unlock {
                self.table_locks = false;
            }
            if e.xa_end {
                self.xa = false;
            }
            self.sql_prepared.retain(|n| !e.deallocated.contains(n));
        }
        let started = self.held() & !before;
        PinReason::ALL
            .into_iter()
            .filter(|r| started & 1 << r.index() != 0)
            .collect()
    }

    /// COM_RESET_CONNECTION, COM_CHANGE_USER: the server dropped it all.
    pub fn clear(&mut self) {
        *self = Pins::default();
    }
}

/// Reads what a statement (a COM_QUERY text, maybe several statements) does
/// to the state that pins a connection.
pub fn effects(sql: &[u8]) -> Effects {
    let mut e = Effects::default();
    // Most statements contain no trigger at all: a few memchr passes say so.
    if !might_pin(sql) {
        return e;
    }
    let mut words = Words::new(sql);
    let mut st = Statement::default();
    while let Some(w) = words.next() {
        match w {
            Word::Semicolon => st = Statement::default(),
            Word::UserVariable => {
                // Assigned (SET @x, INTO @x, @x :=): its value lives on this
                // connection. Only read: nothing to keep. (Any user variable
                // in a SET counts: over-pinning is the safe side.)
                if st.head.as_deref() == Some(b"SET") || st.into || words.assignment_follows() {
                    e.user_variable = true;
                }
                st.count += 1;
            }
            Word::Name(name) => {
                let upper = name.to_ascii_uppercase();
                let head = st.head.as_deref();
                match upper.as_slice() {
                    b"TEMPORARY" if head == Some(b"CREATE") => e.temp_created += 1,
                    b"TEMPORARY" if head == Some(b"DROP") => {
                        e.temp_dropped += 1 + words.commas_to_end() as u32
                    }
                    b"GET_LOCK" => e.named_lock = true,
                    b"RELEASE_ALL_LOCKS" => e.named_locks_released = true,
                    b"LOCK" if st.count == 0 || head == Some(b"FLUSH") => e.table_lock = true,
                    b"TABLES" | b"TABLE" if st.last.as_deref() == Some(b"UNLOCK") => {
                        e.table_unlock = true
                    }
                    b"SQL_CALC_FOUND_ROWS" => e.calc_found_rows = true,
                    b"HANDLER" if st.count == 0 => e.handler = true,
                    b"CALL" if st.count == 0 => e.call = true,
                    b"START" | b"BEGIN" if head == Some(b"XA") && st.count == 1 => {
                        e.xa_start = true
                    }
                    b"COMMIT" | b"ROLLBACK" if head == Some(b"XA") && st.count == 1 => {
                        e.xa_end = true
                    }
                    b"INTO" => st.into = true,
                    _ => {}
                }
                // PREPARE name FROM ...; DEALLOCATE / DROP PREPARE name.
                if st.count == 1 && head == Some(b"PREPARE") {
                    e.prepared.push(upper.clone());
                } else if st.count == 2
                    && matches!(head, Some(b"DEALLOCATE" | b"DROP"))
                    && st.second.as_deref() == Some(b"PREPARE")
                {
                    e.deallocated.push(upper.clone());
                }
                match st.count {
                    0 => st.head = Some(upper.clone()),
                    1 => st.second = Some(upper.clone()),
                    _ => {}
                }
                st.last = Some(upper);
                st.count += 1;
            }
            Word::Assign => e.user_variable |= words.saw_user_variable,
            Word::Other => st.count += 1,
        }
    }
    e
}

/// What the word scanner remembers of the statement it is in.
#[derive(Default)]
struct Statement {
    head: Option<Vec<u8>>,
    second: Option<Vec<u8>>,
    last: Option<Vec<u8>>,
    /// Words so far.
    count: usize,
    into: bool,
}

/// False when no trigger word can be in `sql`: each contains `@`, `:=`,
/// or one of these words, all of which have a letter run we look for.
fn might_pin(sql: &[u8]) -> bool {
    const NEEDLES: [&[u8]; 11] = [
        b"@",
        b":=",
        b"temporary",
        b"lock",
        b"prepare",
        b"found_rows",
        b"handler",
        b"xa",
        b"deallocate",
        b"into",
        b"call",
    ];
    NEEDLES.iter().any(|n| contains_ci(sql, n))
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    if needle.len() == 1 {
        return memchr::memchr(needle[0], hay).is_some();
    }
    let first = needle[0];
    let upper = first.to_ascii_uppercase();
    let mut at = 0;
    while let Some(i) = memchr::memchr2(first, upper, &hay[at..]) {
        let start = at + i;
        if hay
            .get(start..start + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
        {
            return true;
        }
        at = start + 1;
    }
    false
}

enum Word<'a> {
    Name(&'a [u8]),
    UserVariable,
    Assign,
    Semicolon,
    Other,
}

/// Words of SQL text, strings and comments skipped.
struct Words<'a> {
    sql: &'a [u8],
    at: usize,
    saw_user_variable: bool,
}

impl<'a> Words<'a> {
    fn new(sql: &'a [u8]) -> Words<'a> {
        Words {
            sql,
            at: 0,
            saw_user_variable: false,
        }
    }

    fn peek_byte(&self, off: usize) -> Option<u8> {
        self.sql.get(self.at + off).copied()
    }

    fn skip_quoted(&mut self, quote: u8) {
        self.at += 1;
        while let Some(&b) = self.sql.get(self.at) {
            self.at += 1;
            if b == b'\\' && quote != b'`' {
                self.at += 1;
            } else if b == quote {
                if self.sql.get(self.at) == Some(&quote) {
                    self.at += 1; // doubled quote
                } else {
                    return;
                }
            }
        }
    }

    /// After a user variable: is it assigned with `:=` or `=` in SET?
    fn assignment_follows(&self) -> bool {
        let rest = &self.sql[self.at.min(self.sql.len())..];
        let rest = rest.trim_ascii_start();
        rest.starts_with(b":=")
    }

    /// Commas from here to the end of the statement (DROP TEMPORARY TABLE
    /// a, b, c drops three).
    fn commas_to_end(&self) -> usize {
        let rest = &self.sql[self.at.min(self.sql.len())..];
        let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
        rest[..end].iter().filter(|&&b| b == b',').count()
    }

    fn next(&mut self) -> Option<Word<'a>> {
        loop {
            let b = *self.sql.get(self.at)?;
            match b {
                b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' => self.at += 1,
                b'\'' | b'"' | b'`' => {
                    // A backquoted name is a name, but never a trigger word.
                    self.skip_quoted(b);
                    return Some(Word::Other);
                }
                b'#' => self.skip_line(),
                b'-' if self.peek_byte(1) == Some(b'-')
                    && self.peek_byte(2).is_none_or(|c| c.is_ascii_whitespace()) =>
                {
                    self.skip_line()
                }
                b'/' if self.peek_byte(1) == Some(b'*') => {
                    if matches!(self.peek_byte(2), Some(b'!') | Some(b'M')) {
                        // Executable comment: its body is code.
                        self.at += 3;
                        while self
                            .peek_byte(0)
                            .is_some_and(|c| c.is_ascii_digit() || c == b'!')
                        {
                            self.at += 1;
                        }
                    } else {
                        let rest = &self.sql[self.at + 2..];
                        self.at = match memchr::memmem::find(rest, b"*/") {
                            Some(i) => self.at + 2 + i + 2,
                            None => self.sql.len(),
                        };
                    }
                }
                b'*' if self.peek_byte(1) == Some(b'/') => self.at += 2,
                b';' => {
                    self.at += 1;
                    return Some(Word::Semicolon);
                }
                b':' if self.peek_byte(1) == Some(b'=') => {
                    self.at += 2;
                    return Some(Word::Assign);
                }
                b'@' if self.peek_byte(1) == Some(b'@') => {
                    // A system variable: @@x, @@session.x.
                    self.at += 2;
                    while self
                        .peek_byte(0)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
                    {
                        self.at += 1;
                    }
                    return Some(Word::Other);
                }
                b'@' => {
                    self.at += 1;
                    match self.peek_byte(0) {
                        Some(q @ (b'\'' | b'"' | b'`')) => self.skip_quoted(q),
                        _ => {
                            while self.peek_byte(0).is_some_and(|c| {
                                c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.'
                            }) {
                                self.at += 1;
                            }
                        }
                    }
                    self.saw_user_variable = true;
                    return Some(Word::UserVariable);
                }
                c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 => {
                    let start = self.at;
                    while self.peek_byte(0).is_some_and(|c| {
                        c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
                    }) {
                        self.at += 1;
                    }
                    return Some(Word::Name(&self.sql[start..self.at]));
                }
                _ => {
                    self.at += 1;
                    return Some(Word::Other);
                }
            }
        }
    }

    fn skip_line(&mut self) {
        self.at = match memchr::memchr(b'\n', &self.sql[self.at..]) {
            Some(i) => self.at + i + 1,
            None => self.sql.len(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned_after(statements: &[&str]) -> Option<PinReason> {
        let mut pins = Pins::default();
        for s in statements {
            pins.apply(&effects(s.as_bytes()), true, false);
        }
        pins.reason()
    }

    #[test]
    fn plain_statements_do_not_pin() {
        for s in [
            "SELECT c FROM sbtest1 WHERE id = 5",
            "UPDATE t SET a = 1 WHERE id = 2",
            "INSERT INTO t (a) VALUES ('@x := 1 /* lock */')",
            "SELECT @x",
            "SELECT @@session.sql_mode, @@autocommit",
            "SET NAMES utf8mb4",
            "SELECT 'LOCK TABLES t WRITE'",
            "-- LOCK TABLES\nSELECT 1",
            "SELECT a FROM `temporary` WHERE `lock` = 1",
            "SELECT FOUND_ROWS()",
        ] {
            assert_eq!(pinned_after(&[s]), None, "{s}");
        }
    }

    #[test]
    fn each_kind_of_state_pins_and_ends() {
        use PinReason::*;
        let cases: &[(&[&str], Option<PinReason>)] = &[
            (&["CREATE TEMPORARY TABLE t (a INT)"], Some(TemporaryTable)),
            (
                &["CREATE TEMPORARY TABLE t (a INT)", "DROP TEMPORARY TABLE t"],
                None,
            ),
            (
                &[
                    "CREATE TEMPORARY TABLE a (x INT)",
                    "CREATE TEMPORARY TABLE b (x INT)",
                    "DROP TEMPORARY TABLE a",
                ],
                Some(TemporaryTable),
            ),
            (
                &[
                    "CREATE TEMPORARY TABLE a (x INT)",
                    "CREATE TEMPORARY TABLE b (x INT)",
                    "DROP TEMPORARY TABLE IF EXISTS a, b",
                ],
                None,
            ),
            (&["SET @x = 5"], Some(UserVariable)),
            (&["SELECT @n := COUNT(*) FROM t"], Some(UserVariable)),
            (&["SELECT a INTO @v FROM t LIMIT 1"], Some(UserVariable)),
            (&["SELECT GET_LOCK('x', 1)"], Some(NamedLock)),
            (
                &["SELECT GET_LOCK('x', 1)", "SELECT RELEASE_LOCK('x')"],
                Some(NamedLock),
            ),
            (
                &["SELECT GET_LOCK('x', 1)", "SELECT RELEASE_ALL_LOCKS()"],
                None,
            ),
            (&["LOCK TABLES t WRITE"], Some(TableLock)),
            (&["lock table t read", "unlock tables"], None),
            (&["FLUSH TABLES WITH READ LOCK"], Some(TableLock)),
            (&["PREPARE s FROM 'SELECT 1'"], Some(SqlPrepare)),
            (&["PREPARE s FROM 'SELECT 1'", "DEALLOCATE PREPARE s"], None),
            (&["PREPARE s FROM 'SELECT 1'", "DROP PREPARE S"], None),
            (
                &["SELECT SQL_CALC_FOUND_ROWS a FROM t LIMIT 1"],
                Some(FoundRows),
            ),
            (
                &[
                    "SELECT SQL_CALC_FOUND_ROWS a FROM t LIMIT 1",
                    "SELECT FOUND_ROWS()",
                ],
                None,
            ),
            (&["HANDLER t OPEN"], Some(Handler)),
            (&["XA START 'x'"], Some(XaTransaction)),
            (
                &[
                    "XA START 'x'",
                    "XA END 'x'",
                    "XA PREPARE 'x'",
                    "XA COMMIT 'x'",
                ],
                None,
            ),
            (&["SELECT 1; LOCK TABLES t READ"], Some(TableLock)),
            (
                &["/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE */"],
                Some(UserVariable),
            ),
            (&["CALL p(1)"], Some(StoredProcedure)),
        ];
        for (statements, want) in cases {
            assert_eq!(pinned_after(statements), *want, "{statements:?}");
        }
    }

    #[test]
    fn failed_statements_pin_but_do_not_unpin() {
        let mut pins = Pins::default();
        pins.apply(&effects(b"LOCK TABLES t WRITE"), false, false);
        assert_eq!(pins.reason(), Some(PinReason::TableLock));
        pins.apply(&effects(b"UNLOCK TABLES"), false, false);
        assert_eq!(pins.reason(), Some(PinReason::TableLock));
        pins.apply(&effects(b"UNLOCK TABLES"), true, false);
        assert_eq!(pins.reason(), None);
    }

    #[test]
    fn a_generated_id_keeps_the_connection_for_one_statement() {
        let mut pins = Pins::default();
        pins.apply(&effects(b"INSERT INTO t (a) VALUES (1)"), true, true);
        assert_eq!(pins.reason(), Some(PinReason::LastInsertId));
        pins.apply(&effects(b"SELECT LAST_INSERT_ID()"), true, false);
        assert_eq!(pins.reason(), None);
    }

    #[test]
    fn new_reasons_are_reported_once() {
        let mut pins = Pins::default();
        let started = pins.apply(&effects(b"LOCK TABLES t WRITE"), true, false);
        assert_eq!(started.as_slice(), &[PinReason::TableLock]);
        let again = pins.apply(&effects(b"LOCK TABLES u WRITE"), true, false);
        assert!(again.is_empty());
    }
}
