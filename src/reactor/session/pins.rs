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

use super::words::{Word, Words};
use crate::route::ascii::contains_ci;

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

/// How a statement ended, as far as pins care.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    /// Without error.
    pub ok: bool,
    /// It generated an AUTO_INCREMENT value.
    pub generated_id: bool,
    /// It returned a result set (which replaces FOUND_ROWS()).
    pub result_set: bool,
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
    /// FOUND_ROWS() means the last SQL_CALC_FOUND_ROWS's total, which only
    /// the server knows, until a result set replaces it.
    found_rows: bool,
    /// Likewise for LAST_INSERT_ID() after a generated AUTO_INCREMENT value.
    last_insert_id: u8,
    handler: bool,
    xa: bool,
    procedure: bool,
    /// The reasons last reported to the metrics (`settle`), one bit per
    /// `PinReason::index`: what this session counts for in the gauge of
    /// pinned sessions.
    published: u16,
}

/// How a session's pins changed since it last reported them: one bit per
/// `PinReason::index` in each set.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PinChange {
    started: u16,
    ended: u16,
}

impl PinChange {
    pub fn is_empty(self) -> bool {
        self.started | self.ended == 0
    }

    pub fn started(self, reason: PinReason) -> bool {
        self.started & 1 << reason.index() != 0
    }

    pub fn ended(self, reason: PinReason) -> bool {
        self.ended & 1 << reason.index() != 0
    }

    /// The reasons that started, in `PinReason::ALL` order.
    pub fn started_reasons(self) -> impl Iterator<Item = PinReason> {
        PinReason::ALL.into_iter().filter(move |&r| self.started(r))
    }
}

impl Pins {
    /// The first reason the client keeps its connection, if any.
    #[cfg(test)]
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
            PinReason::FoundRows => self.found_rows,
            PinReason::LastInsertId => self.last_insert_id > 0,
            PinReason::Handler => self.handler,
            PinReason::XaTransaction => self.xa,
            PinReason::StoredProcedure => self.procedure,
        }
    }

    /// A statement with effects `e` finished as `outcome` says. Returns how
    /// the pins changed since they were last reported, for the metrics (see
    /// `settle`).
    pub fn apply(&mut self, e: &Effects, outcome: Outcome) -> PinChange {
        let Outcome {
            ok,
            generated_id,
            result_set,
        } = outcome;
        if result_set {
            self.found_rows = false;
        }
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
            self.found_rows = true;
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
        self.settle()
    }

    /// The reasons held now compared with those last reported; the held
    /// ones become the reported ones. Cursors and long data change outside
    /// `apply` (by COM_STMT_* commands without a reply, some of them), so
    /// the session also settles before it decides to keep its connection.
    /// Returns how the pins changed since they were last reported.
    pub fn settle(&mut self) -> PinChange {
        let held = self.held();
        let change = PinChange {
            started: held & !self.published,
            ended: self.published & !held,
        };
        self.published = held;
        change
    }

    /// Whether any reason held at the last `settle` keeps the connection.
    pub fn pinned(&self) -> bool {
        self.published != 0
    }

    /// The session ends: every reason it reported ends with it.
    pub fn unpublish(&mut self) -> PinChange {
        let ended = std::mem::take(&mut self.published);
        PinChange { started: 0, ended }
    }

    /// COM_RESET_CONNECTION, COM_CHANGE_USER: the server dropped it all.
    /// Returns the reasons that end with it.
    pub fn clear(&mut self) -> PinChange {
        let ended = self.unpublish();
        *self = Pins::default();
        ended
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
            Word::Other | Word::Punct(_) => st.count += 1,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Outcome {
        Outcome {
            ok: true,
            ..Outcome::default()
        }
    }

    impl Outcome {
        fn with_result_set(self, result_set: bool) -> Outcome {
            Outcome { result_set, ..self }
        }
    }

    fn pinned_after(statements: &[&str]) -> Option<PinReason> {
        let mut pins = Pins::default();
        for s in statements {
            let result_set = s.starts_with("SELECT");
            pins.apply(&effects(s.as_bytes()), ok().with_result_set(result_set));
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
            // Statements without a result set leave the total in place.
            (
                &[
                    "SELECT SQL_CALC_FOUND_ROWS a FROM t LIMIT 1",
                    "UPDATE t SET a = 1 WHERE id = 2",
                ],
                Some(FoundRows),
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
        pins.apply(&effects(b"LOCK TABLES t WRITE"), Outcome::default());
        assert_eq!(pins.reason(), Some(PinReason::TableLock));
        pins.apply(&effects(b"UNLOCK TABLES"), Outcome::default());
        assert_eq!(pins.reason(), Some(PinReason::TableLock));
        pins.apply(&effects(b"UNLOCK TABLES"), ok());
        assert_eq!(pins.reason(), None);
    }

    #[test]
    fn a_generated_id_keeps_the_connection_for_one_statement() {
        let mut pins = Pins::default();
        let generated = Outcome {
            generated_id: true,
            ..ok()
        };
        pins.apply(&effects(b"INSERT INTO t (a) VALUES (1)"), generated);
        assert_eq!(pins.reason(), Some(PinReason::LastInsertId));
        pins.apply(&effects(b"SELECT LAST_INSERT_ID()"), ok());
        assert_eq!(pins.reason(), None);
    }

    #[test]
    fn new_reasons_are_reported_once() {
        let mut pins = Pins::default();
        let started = pins.apply(&effects(b"LOCK TABLES t WRITE"), ok());
        assert_eq!(
            started.started_reasons().collect::<Vec<_>>(),
            [PinReason::TableLock]
        );
        let again = pins.apply(&effects(b"LOCK TABLES u WRITE"), ok());
        assert!(again.is_empty());
    }

    /// The gauge of pinned sessions after a change: +1 per start, -1 per
    /// end, by reason.
    fn tally(gauge: &mut [i32; PinReason::ALL.len()], change: PinChange) -> Vec<PinReason> {
        for r in PinReason::ALL {
            gauge[r.index()] += i32::from(change.started(r)) - i32::from(change.ended(r));
        }
        assert!(gauge.iter().all(|&n| n == 0 || n == 1), "{gauge:?}");
        PinReason::ALL
            .into_iter()
            .filter(|r| gauge[r.index()] == 1)
            .collect()
    }

    /// Every start is matched by one end, whichever way the state goes: by
    /// a statement, by a reset, or with the session. The gauge of pinned
    /// sessions is the sum of these, so it returns to zero.
    #[test]
    fn every_reported_start_is_matched_by_one_end() {
        use PinReason::*;
        let mut pins = Pins::default();
        let mut gauge = [0; PinReason::ALL.len()];
        let step = |pins: &mut Pins, gauge: &mut _, sql: &str| {
            tally(gauge, pins.apply(&effects(sql.as_bytes()), ok()))
        };
        let create = "CREATE TEMPORARY TABLE t (a INT)";
        assert_eq!(step(&mut pins, &mut gauge, create), [TemporaryTable]);
        let lock = "SELECT GET_LOCK('x', 1)";
        assert_eq!(
            step(&mut pins, &mut gauge, lock),
            [TemporaryTable, NamedLock]
        );
        let drop = "DROP TEMPORARY TABLE t";
        assert_eq!(step(&mut pins, &mut gauge, drop), [NamedLock]);
        let release = "SELECT RELEASE_ALL_LOCKS()";
        assert_eq!(step(&mut pins, &mut gauge, release), []);
        // A cursor is opened by COM_STMT_EXECUTE, outside `apply`'s
        // effects: its execute's reply reports it.
        pins.cursors.push(7);
        assert_eq!(step(&mut pins, &mut gauge, "SELECT 1"), [Cursor]);
        // Long data is sent without a reply: settled before the session
        // decides whether to keep its connection.
        pins.long_data.push(7);
        assert_eq!(tally(&mut gauge, pins.settle()), [Cursor, LongData]);
        assert!(pins.pinned());
        // A reset ends everything at once.
        step(&mut pins, &mut gauge, "SET @x = 1");
        assert_eq!(tally(&mut gauge, pins.clear()), []);
        assert!(!pins.pinned());
        assert!(pins.settle().is_empty());
        // The session ends with reasons held.
        step(&mut pins, &mut gauge, "LOCK TABLES t WRITE");
        step(&mut pins, &mut gauge, "HANDLER t OPEN");
        assert_eq!(tally(&mut gauge, pins.unpublish()), []);
        assert!(pins.unpublish().is_empty(), "ended once");
    }
}
