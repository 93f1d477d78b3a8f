//! One client statement -> what the session does with it: which shard, or
//! which session-wide action. Sans-IO: text and topology in, a decision out.
//!
//! The rules, in the order they apply:
//!
//! - A COM_QUERY may hold several statements (multi-statements). Every part
//!   is analysed and they must all go to one shard. BEGIN, COMMIT and
//!   ROLLBACK ride along (`BEGIN; INSERT ...; COMMIT` is common; the server's
//!   status flags tell the session where the transaction is afterwards).
//!   SET and USE parts go with the rest, and are also returned
//!   ([`Routed::session_parts`]) for the session to replay them on its
//!   other backends.
//! - A statement on sharded tables goes to the shard of its key values; all
//!   values must map to one shard. If it also reads unsharded tables (which
//!   live on the designated shard only), that shard must be the designated
//!   one.
//! - A statement that names no table at all (`SELECT 1`, `SELECT
//!   LAST_INSERT_ID()`, `SHOW WARNINGS`) goes to the backend the session used
//!   last: that is where the state it asks about lives.
//! - Everything else on unsharded and global tables, DDL and CALL go to the
//!   designated shard.

use std::fmt;
use std::ops::Range;

use smallvec::SmallVec;

use super::key::KeyError;
use super::scanner::{
    analyze, split_statements, Analysis, Refusal, ScanOptions, StatementKind, Target,
};
use super::schema::{KeyType, TableRule};
use super::topology::Topology;
use super::value::KeyValue;

/// What to do with a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send it to this shard (its dense index in the shard map).
    Shard(usize),
    /// It names no table: the session's last-used backend (or the designated
    /// shard if it has none yet).
    LastUsed,
    /// `SET` or `USE`: runs on the last-used backend and is replayed on every
    /// other backend of the session before its next statement there.
    Session,
    /// `BEGIN` / `START TRANSACTION`: held until the first routed statement
    /// picks the transaction's shard.
    Begin,
    /// `COMMIT`: to the transaction's shard.
    Commit,
    /// `ROLLBACK`: to the transaction's shard.
    Rollback,
}

/// A routed COM_QUERY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub decision: Decision,
    /// The SET and USE statements in it (ranges into the query text): the
    /// session replays them on its other backends.
    pub session_parts: SmallVec<[Range<usize>; 1]>,
}

/// Why a statement cannot be routed; the message says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The scanner refused it (names the table, column and reason).
    Refused(Refusal),
    /// A key value cannot be hashed safely.
    BadKey {
        table: String,
        column: String,
        error: KeyError,
    },
    /// The key values (or the parts of a multi-statement) map to different
    /// shards.
    SpansShards { table: String, column: String },
    /// A sharded statement that also reads unsharded tables, which live only
    /// on the designated shard, while its key lives elsewhere.
    JoinsUnsharded { table: String, column: String },
    /// The session set sql_mode with an expression the proxy cannot follow,
    /// and the statement lexes differently under ANSI_QUOTES or
    /// NO_BACKSLASH_ESCAPES.
    UnknownSqlMode,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::Refused(r) => r.fmt(f),
            RouteError::BadKey { table, column, error } => write!(
                f,
                "dbrouter: cannot route this statement on sharded table `{table}` by key column `{column}`: {error}"
            ),
            RouteError::SpansShards { table, column } => write!(
                f,
                "dbrouter: cannot route this statement on sharded table `{table}`: its `{column}` values live on different shards (send one statement per shard)"
            ),
            RouteError::JoinsUnsharded { table, column } => write!(
                f,
                "dbrouter: cannot route this statement on sharded table `{table}`: it also reads unsharded tables, which live on the designated shard only, and its `{column}` value lives on another shard (query them separately)"
            ),
            RouteError::UnknownSqlMode => write!(
                f,
                "dbrouter: sql_mode was set with an expression dbrouter cannot follow, and this statement reads differently under ANSI_QUOTES or NO_BACKSLASH_ESCAPES (set sql_mode with a literal string)"
            ),
        }
    }
}

impl std::error::Error for RouteError {}

/// Routes one COM_QUERY text.
///
/// # Examples
///
/// ```
/// use dbrouter::config::Config;
/// use dbrouter::route::router::{route_query, Decision};
/// use dbrouter::route::scanner::ScanOptions;
/// use dbrouter::route::topology::Topology;
///
/// let config = Config::from_toml(r#"
///     [proxy]
///     listen = "127.0.0.1:6033"
///     [[user]]
///     name = "app"
///     password_hash = ""
///     [[shard]]
///     id = 0
///     master = "127.0.0.1:3306"
///     [[shard]]
///     id = 1
///     master = "127.0.0.1:3316"
///     [sharding]
///     buckets = 1024
///     [[table]]
///     name = "users"
///     key = "userid"
///     key_type = "int"
/// "#).unwrap();
/// let topology = Topology::from_config(&config);
/// let opts = ScanOptions::new(101119);
/// // crc32("42") % 1024 = 136: shard 0 holds buckets 0-511.
/// let d = route_query(b"SELECT * FROM users WHERE userid = 42", &topology, &opts).unwrap();
/// assert_eq!(d.decision, Decision::Shard(0));
/// assert_eq!(route_query(b"SELECT 1", &topology, &opts).unwrap().decision, Decision::LastUsed);
/// ```
pub fn route_query(
    sql: &[u8],
    topology: &Topology,
    opts: &ScanOptions,
) -> Result<Routed, RouteError> {
    let mut session_parts = SmallVec::new();
    let parts = if one_statement_as_is(sql) {
        // No `;` byte: `split_statements` would make at most one part,
        // trimmed of whitespace the statement does not have, i.e. `sql`
        // itself (or no part, which means the same below). Skipping its
        // lexer pass saves a whole pass over every single-statement query.
        SmallVec::new()
    } else {
        split_statements(sql, opts)
    };
    if parts.len() <= 1 {
        // The common case: one statement (perhaps with a trailing `;`).
        let range = parts.first().cloned().unwrap_or(0..sql.len());
        let analysis =
            analyze(&sql[range.clone()], &topology.schema, opts).map_err(RouteError::Refused)?;
        let decision = decide(&analysis, topology, None)?;
        if decision == Decision::Session {
            session_parts.push(range);
        }
        return Ok(Routed {
            decision,
            session_parts,
        });
    }
    let mut combined: Option<Decision> = None;
    let mut all_session = true;
    for range in parts {
        let analysis =
            analyze(&sql[range.clone()], &topology.schema, opts).map_err(RouteError::Refused)?;
        let decision = match decide(&analysis, topology, None)? {
            Decision::Session => {
                session_parts.push(range);
                Decision::LastUsed
            }
            // Inside a multi-statement, transaction control goes wherever
            // the rest goes.
            Decision::Begin | Decision::Commit | Decision::Rollback => {
                all_session = false;
                Decision::LastUsed
            }
            d => {
                all_session = false;
                d
            }
        };
        combined = Some(match (combined, decision) {
            (None, d) => d,
            (Some(Decision::LastUsed), d) | (Some(d), Decision::LastUsed) => d,
            (Some(Decision::Shard(a)), Decision::Shard(b)) if a == b => Decision::Shard(a),
            (Some(_), _) => return Err(multi_statement_spans(&analysis)),
        });
    }
    let decision = if all_session {
        Decision::Session
    } else {
        combined.unwrap_or(Decision::LastUsed)
    };
    Ok(Routed {
        decision,
        session_parts,
    })
}

/// Whether [`split_statements`] would return `sql` whole (or nothing, which
/// `route_query` reads the same): it ends a statement only at a `;` token,
/// which only a `;` byte makes, and without one it returns at most the
/// whole text trimmed of ASCII whitespace. A `;` inside a string or a
/// comment also sends the query to `split_statements`: rarer than it costs
/// to tell, and the answer stays exactly the split's.
#[inline]
fn one_statement_as_is(sql: &[u8]) -> bool {
    let ws = |c: Option<&u8>| c.is_some_and(u8::is_ascii_whitespace);
    !ws(sql.first()) && !ws(sql.last()) && memchr::memchr(b';', sql).is_none()
}

/// Routes a prepared statement's execution: `analysis` of its text, with
/// `?` placeholders bound by `param` (the COM_STMT_EXECUTE values).
pub fn route_prepared<'p>(
    analysis: &Analysis<'_>,
    topology: &Topology,
    param: impl Fn(u16) -> Option<KeyValue<'p>>,
) -> Result<Decision, RouteError> {
    decide(analysis, topology, Some(&param))
}

fn multi_statement_spans(analysis: &Analysis<'_>) -> RouteError {
    let (table, column) = match &analysis.target {
        Target::Keys { table, column, .. } => (lossy(table), lossy(column)),
        Target::Unsharded => ("(unsharded)".to_string(), String::new()),
    };
    RouteError::SpansShards { table, column }
}

fn decide<'p>(
    analysis: &Analysis<'_>,
    topology: &Topology,
    param: Option<&dyn Fn(u16) -> Option<KeyValue<'p>>>,
) -> Result<Decision, RouteError> {
    let designated = topology.shards.default_shard().index;
    let Target::Keys {
        table,
        column,
        values,
    } = &analysis.target
    else {
        return Ok(match analysis.kind {
            StatementKind::Set | StatementKind::Use => Decision::Session,
            StatementKind::Begin => Decision::Begin,
            StatementKind::Commit => Decision::Commit,
            StatementKind::Rollback => Decision::Rollback,
            _ if analysis.unsharded_tables => Decision::Shard(designated),
            StatementKind::Select | StatementKind::Show => Decision::LastUsed,
            _ => Decision::Shard(designated),
        });
    };
    let key_type = match topology.schema.table(table) {
        Some(TableRule::Sharded { key_type, .. }) => *key_type,
        // The scanner names a sharded table it found in the schema; if the
        // lookup fails anyway, refuse rather than guess.
        _ => {
            return Err(RouteError::Refused(Refusal {
                table: lossy(table),
                column: lossy(column),
                reason: super::scanner::RefusalReason::NotUnderstood,
            }))
        }
    };
    let mut shard: Option<usize> = None;
    for value in values {
        let bound;
        let value = match (value, param) {
            (&KeyValue::Placeholder(i), Some(param)) => {
                bound = param(i).ok_or_else(|| bad_key(table, column, KeyError::Unbound))?;
                &bound
            }
            (KeyValue::Null, _) => continue, // matches no row
            (v, _) => v,
        };
        if let KeyValue::Null = value {
            continue;
        }
        let index = route_one(value, key_type, topology).map_err(|e| bad_key(table, column, e))?;
        match shard {
            None => shard = Some(index),
            Some(s) if s == index => {}
            Some(_) => {
                return Err(RouteError::SpansShards {
                    table: lossy(table),
                    column: lossy(column),
                })
            }
        }
    }
    // Every value NULL (`userid IN (NULL)`): no row matches anywhere; any
    // shard answers correctly with nothing, so use the designated one.
    let shard = shard.unwrap_or(designated);
    if analysis.unsharded_tables && shard != designated {
        return Err(RouteError::JoinsUnsharded {
            table: lossy(table),
            column: lossy(column),
        });
    }
    Ok(Decision::Shard(shard))
}

fn route_one(
    value: &KeyValue<'_>,
    key_type: KeyType,
    topology: &Topology,
) -> Result<usize, KeyError> {
    topology.route_key(value, key_type).map(|s| s.index)
}

fn bad_key(table: &[u8], column: &[u8], error: KeyError) -> RouteError {
    RouteError::BadKey {
        table: lossy(table),
        column: lossy(column),
        error,
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn topology() -> Topology {
        let config = Config::from_toml(
            r#"
            [proxy]
            listen = "127.0.0.1:6033"
            [[user]]
            name = "app"
            password_hash = ""
            [[shard]]
            id = 0
            master = "127.0.0.1:3306"
            [[shard]]
            id = 1
            master = "127.0.0.1:3316"
            [sharding]
            buckets = 1024
            default_shard = 0
            [[table]]
            name = "users"
            key = "userid"
            key_type = "int"
            [[table]]
            name = "countries"
            global = true
            "#,
        )
        .unwrap();
        Topology::from_config(&config)
    }

    fn route(sql: &str) -> Result<Decision, RouteError> {
        route_query(sql.as_bytes(), &topology(), &ScanOptions::new(101119)).map(|r| r.decision)
    }

    fn session_parts(sql: &str) -> Vec<&str> {
        let routed = route_query(sql.as_bytes(), &topology(), &ScanOptions::new(101119)).unwrap();
        routed.session_parts.into_iter().map(|r| &sql[r]).collect()
    }

    /// A key on each shard: crc32("42") % 1024 = 136 (shard 0), and the
    /// first key of shard 1 found by the shard map itself.
    fn key_on_shard_1() -> i64 {
        let t = topology();
        (0..10_000)
            .find(|k| t.route_key(&KeyValue::Int(*k), KeyType::Int).unwrap().index == 1)
            .unwrap()
    }

    #[test]
    fn keys_pick_their_shard() {
        assert_eq!(
            route("SELECT * FROM users WHERE userid = 42"),
            Ok(Decision::Shard(0))
        );
        let k = key_on_shard_1();
        assert_eq!(
            route(&format!("SELECT * FROM users WHERE userid = {k}")),
            Ok(Decision::Shard(1))
        );
        assert_eq!(
            route(&format!("SELECT * FROM users WHERE userid = '{k}'")),
            Ok(Decision::Shard(1))
        );
    }

    #[test]
    fn keys_on_two_shards_are_refused() {
        let k = key_on_shard_1();
        let err = route(&format!("SELECT * FROM users WHERE userid IN (42, {k})")).unwrap_err();
        assert!(matches!(err, RouteError::SpansShards { .. }), "{err}");
        assert!(err.to_string().contains("`users`") && err.to_string().contains("`userid`"));
    }

    #[test]
    fn multi_statements_must_agree() {
        let k = key_on_shard_1();
        assert_eq!(
            route("SELECT 1; SELECT * FROM users WHERE userid = 42"),
            Ok(Decision::Shard(0))
        );
        let err = route(&format!(
            "SELECT * FROM users WHERE userid = 42; SELECT * FROM users WHERE userid = {k}"
        ))
        .unwrap_err();
        assert!(matches!(err, RouteError::SpansShards { .. }), "{err}");
        assert_eq!(route("SET @a = 1; SELECT 1"), Ok(Decision::LastUsed));
        assert_eq!(session_parts("SET @a = 1; SELECT 1"), ["SET @a = 1"]);
        assert_eq!(route("SET @a = 1; SET @b = 2"), Ok(Decision::Session));
        assert_eq!(session_parts("USE app"), ["USE app"]);
        assert_eq!(
            route("USE app; SELECT * FROM users WHERE userid = 42"),
            Ok(Decision::Shard(0))
        );
        assert_eq!(
            route("BEGIN; INSERT INTO users (userid) VALUES (42); COMMIT"),
            Ok(Decision::Shard(0))
        );
        assert_eq!(route("BEGIN; SELECT 1"), Ok(Decision::LastUsed));
    }

    /// `route_query` skips `split_statements` only where the split could
    /// only give the whole text (or nothing): no `;` byte and no whitespace
    /// to trim. A `;` in a string or a comment still takes the split.
    #[test]
    fn the_split_is_skipped_only_where_it_gives_the_whole_text() {
        let opts = ScanOptions::new(101119);
        let whole = |sql: &str| {
            let parts = split_statements(sql.as_bytes(), &opts);
            parts.is_empty() || (parts.len() == 1 && parts[0] == (0..sql.len()))
        };
        for sql in [
            "",
            "SELECT * FROM users WHERE userid = 42",
            "SELECT 1 /* ; */",
            "SELECT ';'",
            "SELECT 1;",
            ";",
            "SELECT 1; SELECT 2",
            " SELECT 1",
            "SELECT 1\n",
            "SELECT 1\x0b",
            "/* only a comment */",
            "-- x",
            "# x",
            "BEGIN NOT ATOMIC SELECT 1; END",
            "/*!50000 SELECT 1; */",
            "SELECT 'open",
        ] {
            if one_statement_as_is(sql.as_bytes()) {
                assert!(whole(sql), "{sql:?}");
            }
        }
        assert!(one_statement_as_is(
            b"SELECT * FROM users WHERE userid = 42"
        ));
        assert!(!one_statement_as_is(b"SELECT ';'"));
        assert!(!one_statement_as_is(b"SELECT 1\n"));
        assert_eq!(
            route("SELECT * FROM users WHERE userid = 42 -- ;\n"),
            Ok(Decision::Shard(0))
        );
    }

    #[test]
    fn session_and_transaction_statements() {
        assert_eq!(route("SET NAMES utf8mb4"), Ok(Decision::Session));
        assert_eq!(route("USE app"), Ok(Decision::Session));
        assert_eq!(route("START TRANSACTION"), Ok(Decision::Begin));
        assert_eq!(route("begin"), Ok(Decision::Begin));
        assert_eq!(route("COMMIT"), Ok(Decision::Commit));
        assert_eq!(route("ROLLBACK"), Ok(Decision::Rollback));
    }

    #[test]
    fn unsharded_statements() {
        assert_eq!(route("SELECT 1"), Ok(Decision::LastUsed));
        assert_eq!(route("SELECT LAST_INSERT_ID()"), Ok(Decision::LastUsed));
        assert_eq!(route("SELECT * FROM countries"), Ok(Decision::Shard(0)));
        assert_eq!(route("CREATE TABLE t (a INT)"), Ok(Decision::Shard(0)));
    }

    #[test]
    fn sharded_join_with_unsharded_only_on_the_designated_shard() {
        assert_eq!(
            route("SELECT * FROM users u JOIN countries c ON u.cc = c.cc WHERE u.userid = 42"),
            Ok(Decision::Shard(0))
        );
        let k = key_on_shard_1();
        let err = route(&format!(
            "SELECT * FROM users u JOIN countries c ON u.cc = c.cc WHERE u.userid = {k}"
        ))
        .unwrap_err();
        assert!(matches!(err, RouteError::JoinsUnsharded { .. }), "{err}");
    }

    #[test]
    fn bad_keys_are_refused_with_the_table_and_column() {
        let err = route("SELECT * FROM users WHERE userid = 4.5").unwrap_err();
        assert!(matches!(err, RouteError::BadKey { .. }), "{err}");
        assert!(err.to_string().contains("`userid`"));
        assert!(matches!(
            route("SELECT * FROM users WHERE userid = 1 OR 1 = 1"),
            Err(RouteError::Refused(_))
        ));
    }

    #[test]
    fn placeholders_are_bound_at_execute() {
        let t = topology();
        let opts = ScanOptions::new(101119);
        let a = analyze(b"SELECT * FROM users WHERE userid = ?", &t.schema, &opts).unwrap();
        let k = key_on_shard_1();
        assert_eq!(
            route_prepared(&a, &t, |_| Some(KeyValue::Int(42))),
            Ok(Decision::Shard(0))
        );
        assert_eq!(
            route_prepared(&a, &t, |_| Some(KeyValue::Int(k))),
            Ok(Decision::Shard(1))
        );
        assert!(matches!(
            route_prepared(&a, &t, |_| None),
            Err(RouteError::BadKey { .. })
        ));
    }
}
