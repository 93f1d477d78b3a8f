//! The shard-key scanner: which sharded table a statement touches and which
//! key values bind every row it can touch, or why that cannot be known.
//!
//! A hand-written, zero-copy scan of the statement bytes ([`lexer`] holds
//! MariaDB's lexical rules), not a SQL parser: it understands the shapes
//! applications send (point selects, multi-row inserts, updates and deletes
//! by key, joins on the key, session statements) and refuses everything else
//! that touches a sharded table. A refusal is an error the application sees;
//! a wrong guess writes rows to the wrong shard. So every rule below is
//! written to refuse when in doubt.
//!
//! # What binds
//!
//! The outermost WHERE clause (and the ON clauses of inner joins) is read as
//! a conjunction: `c1 AND c2 AND ...`, where a conjunct may be a parenthesised
//! conjunction itself. A conjunct binds the key when it is exactly
//! `key = literal`, `literal = key`, `key <=> literal` or
//! `key IN (literal, ...)`, with nothing of higher precedence around it: the
//! token after it must end the conjunct (`AND`, `&&`, `OR`, `)`, the end of
//! the clause). So `userid = 42 --1` (which is `42 - -1`), `userid = 1+1`,
//! `userid = 42 COLLATE x`, `NOT userid = 42` and `(userid = 42) IS FALSE`
//! bind nothing. An OR, `||` or XOR at the top level voids every binding of
//! the clause; inside an AND-ed parenthesis it voids that parenthesis only.
//! `CASE ... END` and `BETWEEN ... AND` are not conjunctions.
//!
//! # Tables
//!
//! Every identifier token that names a sharded table (not followed by `.`,
//! which makes it a qualifier) must be consumed as a table reference of the
//! outermost statement; any other occurrence (a subquery, a derived table, a
//! CTE, an alias or column spelled like a sharded table, a DDL statement)
//! refuses the statement. This is the safety net under the structural rules:
//! whatever the scanner does not parse cannot hide a sharded table.
//!
//! Several sharded tables may appear only when each is bound, directly or
//! through key equalities (`a.userid = b.userid`, `JOIN ... USING (userid)`),
//! and all share one key type. Under a RIGHT JOIN, ON clauses bind nothing
//! (the preserved side's rows are not restricted by them).
//!
//! # Cost
//!
//! One pass, one token of lookahead, no recursion (nesting lives in a
//! `SmallVec` stack), no allocation for a point select: values borrow the
//! statement unless an escape must be resolved.

mod fast;
mod lexer;

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use smallvec::SmallVec;

use self::lexer::{unescape, Kw, Lexer, Tok, Token};
use super::ascii::contains_ci;
use super::schema::{KeyType, Schema, TableRule};
use super::value::KeyValue;

/// The session state that changes how a statement is lexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// sql_mode NO_BACKSLASH_ESCAPES: `\` is an ordinary character in strings.
    pub no_backslash_escapes: bool,
    /// sql_mode ANSI_QUOTES: `"x"` is an identifier, not a string.
    pub ansi_quotes: bool,
    /// MariaDB style, e.g. 101119 for 10.11.19: `/*!NNNNN ... */` and
    /// `/*M!NNNNNN ... */` are code iff NNNNN <= this (and, for `/*!`, NNNNN
    /// is not a MySQL 5.7+ version in 50700..=99999, which MariaDB skips);
    /// unversioned `/*! */`, `/*M! */` are always code.
    pub server_version: u32,
}

impl ScanOptions {
    /// Default sql_mode quoting and escaping, for a server of this version.
    pub const fn new(server_version: u32) -> ScanOptions {
        ScanOptions {
            no_backslash_escapes: false,
            ansi_quotes: false,
            server_version,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    Select,
    Insert,
    Replace,
    Update,
    Delete,
    Set,
    Use,
    /// `BEGIN`, `BEGIN WORK`, `START TRANSACTION ...` (not `BEGIN NOT
    /// ATOMIC`, not XA: those are `Other`).
    Begin,
    Commit,
    /// `ROLLBACK [WORK]` (`ROLLBACK TO SAVEPOINT` is `Other`: it does not end
    /// the transaction).
    Rollback,
    Show,
    /// Everything else: `WITH`, `(SELECT ...)`, EXPLAIN, DDL, CALL, LOAD
    /// DATA, `SET STATEMENT ... FOR`, XA, SAVEPOINT, PREPARE, ...
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis<'a> {
    pub kind: StatementKind,
    pub target: Target<'a>,
    /// Number of `?` placeholders in the statement (outside strings/comments).
    pub placeholders: u16,
    /// The statement also reads unsharded tables (global or unknown ones, or
    /// derived tables): those live only on the designated shard, so a
    /// [`Target::Keys`] statement with this set is correct only when its
    /// keys map to the designated shard; the caller must refuse otherwise.
    pub unsharded_tables: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// Names no sharded table (SELECT 1, SHOW, information_schema, global and
    /// unknown tables, session statements): the designated shard.
    Unsharded,
    /// Every row the statement can touch is bound by one of `values` of
    /// `column` of sharded `table` (as written in the statement, for
    /// messages). The caller maps every value to a shard and refuses if they
    /// differ. When `Analysis::unsharded_tables` is set, the statement also
    /// joins tables that live only on the designated shard: the caller must
    /// then also refuse unless that shard is the designated one.
    ///
    /// Values may repeat and may be `KeyValue::Null` (`userid IN (NULL, 5)`:
    /// NULL matches no row and may be ignored).
    Keys {
        table: &'a [u8],
        /// The key column name from the Schema (lowercase).
        column: &'a [u8],
        values: SmallVec<[KeyValue<'a>; 4]>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub table: String,
    pub column: String,
    pub reason: RefusalReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// Nothing binds the key: no WHERE, a WHERE that does not compare the key
    /// with literals, or an INSERT without a column list (the table's column
    /// order is not in the configuration, so the key's position is unknown).
    NoKey,
    /// OR, `||` or XOR at the top of the WHERE clause.
    TopLevelOr,
    /// The sharded table or its key appears only inside a subquery.
    KeyOnlyInSubquery,
    /// The key is compared with an expression, a column, a subquery or a
    /// literal with COLLATE, not with a literal or `?`.
    KeyComparedWithExpression,
    /// UPDATE or ON DUPLICATE KEY UPDATE assigns the key column.
    UpdateAssignsKey,
    /// The INSERT column list (or SET list) does not name the key.
    KeyNotInInsertColumns,
    /// INSERT ... SELECT (or TABLE, or a parenthesised query).
    InsertWithoutValues,
    /// Sharded tables not all bound (directly or through key equalities), or
    /// with different key types.
    MixedTables,
    /// An INSERT gives the key NULL (AUTO_INCREMENT would pick the key on the
    /// one shard it reaches).
    InsertNullKey,
    /// Anything on a sharded table the scanner does not fully understand.
    NotUnderstood,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, c) = (&self.table, &self.column);
        write!(
            f,
            "dbrouter: cannot route this statement on sharded table `{t}`: "
        )?;
        match self.reason {
            RefusalReason::NoKey => write!(
                f,
                "nothing binds key column `{c}` to literal values (add `{c} = <value>` AND-ed to the WHERE clause; an INSERT must name `{c}` in its column list)"
            ),
            RefusalReason::TopLevelOr => write!(
                f,
                "the WHERE clause has OR or XOR at its top level, so no `{c}` value binds every row (use `{c} IN (...)`, or AND `{c} = <value>` outside the OR)"
            ),
            RefusalReason::KeyOnlyInSubquery => write!(
                f,
                "the table or key column `{c}` appears inside a subquery or derived table (bind `{c}` in the outermost WHERE clause of a plain statement)"
            ),
            RefusalReason::KeyComparedWithExpression => write!(
                f,
                "key column `{c}` is compared with an expression, not a literal (compare it with a literal or `?` alone)"
            ),
            RefusalReason::UpdateAssignsKey => write!(
                f,
                "the statement assigns key column `{c}`, which would move the row to another shard (delete the row and insert it anew)"
            ),
            RefusalReason::KeyNotInInsertColumns => write!(
                f,
                "the INSERT does not give key column `{c}` (add `{c}` to the column list)"
            ),
            RefusalReason::InsertWithoutValues => write!(
                f,
                "INSERT ... SELECT cannot be routed by key column `{c}` (insert literal VALUES rows)"
            ),
            RefusalReason::MixedTables => write!(
                f,
                "it joins sharded tables that are not all bound to `{c}` values or joined on their keys (join on the keys and bind one of them with `{c} = <value>`)"
            ),
            RefusalReason::InsertNullKey => write!(
                f,
                "the INSERT gives key column `{c}` NULL (generate the key in the application)"
            ),
            RefusalReason::NotUnderstood => write!(
                f,
                "the statement is not understood well enough to route it by key column `{c}` (send a plain SELECT, INSERT, UPDATE or DELETE that binds `{c}`)"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// Finds the sharded table, the key values and the statement kind of one
/// statement (split a multi-statement COM_QUERY with [`split_statements`]
/// first: several statements in one call are refused when they touch a
/// sharded table).
///
/// # Examples
///
/// ```
/// use dbrouter::route::scanner::{analyze, ScanOptions, Target};
/// use dbrouter::route::schema::{KeyType, MissingKey, Schema, TableRule};
/// use dbrouter::route::value::KeyValue;
///
/// let schema = Schema::new().with_table(
///     "users",
///     TableRule::Sharded { key: "userid".into(), key_type: KeyType::Int, missing_key: MissingKey::Error },
/// );
/// let a = analyze(b"SELECT name FROM users WHERE userid = 42", &schema, &ScanOptions::new(101119)).unwrap();
/// match a.target {
///     Target::Keys { values, .. } => assert_eq!(values[0], KeyValue::Number(b"42"[..].into())),
///     Target::Unsharded => unreachable!(),
/// }
/// ```
pub fn analyze<'a>(
    sql: &'a [u8],
    schema: &'a Schema,
    opts: &ScanOptions,
) -> Result<Analysis<'a>, Refusal> {
    // Most statements an application sends are point selects: read them in
    // one pass over the bytes, without tokens (see `fast`).
    if let Some(p) = fast::point_select(sql, schema) {
        return Ok(p.analysis());
    }
    analyze_with(sql, schema, opts, true)
}

/// [`analyze`] without its fast paths (the point select, the plain VALUES
/// rows of an INSERT): every statement token by token. What the tests and
/// the fuzz target compare the fast paths with; slower, never needed
/// otherwise.
#[doc(hidden)]
pub fn analyze_reference<'a>(
    sql: &'a [u8],
    schema: &'a Schema,
    opts: &ScanOptions,
) -> Result<Analysis<'a>, Refusal> {
    analyze_with(sql, schema, opts, false)
}

/// [`fast::point_select`] alone, for tests that count how often it answers.
#[doc(hidden)]
pub fn analyze_point_select<'a>(sql: &'a [u8], schema: &'a Schema) -> Option<Analysis<'a>> {
    fast::point_select(sql, schema).map(fast::PointSelect::analysis)
}

fn analyze_with<'a>(
    sql: &'a [u8],
    schema: &'a Schema,
    opts: &ScanOptions,
    fast: bool,
) -> Result<Analysis<'a>, Refusal> {
    let mut p = Parser::new(sql, schema, opts);
    p.fast = fast;
    let first = p.peek();
    p.lead = first;
    let kind = if first.kind != Tok::Word {
        StatementKind::Other
    } else {
        match p.upper_kw(first) {
            Some(Kw::Select) => StatementKind::Select,
            Some(Kw::Insert) => StatementKind::Insert,
            Some(Kw::Replace) => StatementKind::Replace,
            Some(Kw::Update) => StatementKind::Update,
            Some(Kw::Delete) => StatementKind::Delete,
            Some(Kw::Set) => StatementKind::Set,
            Some(Kw::Use) => StatementKind::Use,
            Some(Kw::Begin) | Some(Kw::Start) => StatementKind::Begin,
            Some(Kw::Commit) => StatementKind::Commit,
            Some(Kw::Rollback) => StatementKind::Rollback,
            Some(Kw::Show) => StatementKind::Show,
            _ => StatementKind::Other,
        }
    };
    let kind = match kind {
        StatementKind::Select => {
            p.select();
            kind
        }
        StatementKind::Insert | StatementKind::Replace => {
            p.insert()?;
            kind
        }
        StatementKind::Update => {
            p.update()?;
            kind
        }
        StatementKind::Delete => {
            p.delete();
            kind
        }
        StatementKind::Set => p.set(),
        StatementKind::Begin => p.begin(),
        StatementKind::Rollback => p.rollback_stmt(),
        _ => kind,
    };
    p.finish(kind)
}

/// Splits a COM_QUERY into its statements at top-level `;` (outside strings,
/// identifiers and comments); empty statements dropped. Ranges into `sql`,
/// trimmed of surrounding whitespace.
///
/// A compound statement (`BEGIN NOT ATOMIC`, IF, CASE, loops, labels,
/// `CREATE PROCEDURE ... BEGIN ... END`) holds `;` that do not end it, and
/// finding its END would take a parser: from its start, the rest of the
/// query is one range (and, as `Other`, refused if it names a sharded
/// table). A `;` inside `/*! */` code, or a lexical error, likewise leaves
/// the rest as one range.
pub fn split_statements(sql: &[u8], opts: &ScanOptions) -> SmallVec<[Range<usize>; 2]> {
    let mut out = SmallVec::new();
    let mut lex = Lexer::new(
        sql,
        opts.no_backslash_escapes,
        opts.ansi_quotes,
        opts.server_version,
    );
    let mut start = 0;
    let mut tokens = 0u32;
    let mut first: Option<Token> = None;
    let mut compound = false;
    let push = |out: &mut SmallVec<[Range<usize>; 2]>, r: Range<usize>| {
        let mut r = r;
        while r.start < r.end && sql[r.start].is_ascii_whitespace() {
            r.start += 1;
        }
        while r.end > r.start && sql[r.end - 1].is_ascii_whitespace() {
            r.end -= 1;
        }
        if !r.is_empty() {
            out.push(r);
        }
    };
    loop {
        let t = lex.next_token();
        match t.kind {
            Tok::End | Tok::Error => {
                if tokens > 0 || t.kind == Tok::Error {
                    push(&mut out, start..sql.len());
                }
                return out;
            }
            Tok::Semi if !compound && !lex.in_code_comment() => {
                if tokens > 0 {
                    push(&mut out, start..t.start);
                }
                start = t.end;
                tokens = 0;
                first = None;
            }
            _ => {
                tokens += 1;
                let word = |w: Kw| t.kind == Tok::Word && t.kw == w;
                match (tokens, first) {
                    (1, _) => {
                        first = Some(t);
                        compound = [
                            Kw::If,
                            Kw::Case,
                            Kw::While,
                            Kw::Loop,
                            Kw::Repeat,
                            Kw::Declare,
                            Kw::For,
                        ]
                        .into_iter()
                        .any(word);
                    }
                    (2, Some(f)) => {
                        if f.kind == Tok::Word && f.kw == Kw::Begin {
                            // BEGIN WORK / BEGIN; is a transaction.
                            compound = !word(Kw::Work);
                        }
                        // `label: BEGIN ...`
                        if t.kind == Tok::Op && &sql[t.start..t.end] == b":" {
                            compound = true;
                        }
                    }
                    _ => {}
                }
                if let Some(f) = first {
                    if tokens > 1
                        && f.kind == Tok::Word
                        && matches!(f.kw, Kw::Create | Kw::Alter)
                        && word(Kw::Begin)
                    {
                        compound = true;
                    }
                }
            }
        }
    }
}

/// How deep parentheses may nest before a statement on a sharded table is
/// refused; the stack costs a few bytes per level, this only bounds memory
/// on hostile input.
const MAX_GROUPS: usize = 4096;

/// Instances of tables in one statement the scanner tracks (bit masks).
const MAX_TABLES: usize = 64;

/// One table reference of the outermost statement.
#[derive(Clone, Copy)]
struct Inst<'a> {
    name: Token,
    alias: Option<Token>,
    key: Option<(&'a str, KeyType)>,
}

/// Key values found, and which table instances they bind.
#[derive(Default)]
struct Sink<'a> {
    values: SmallVec<[KeyValue<'a>; 4]>,
    mask: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SinkId {
    Where,
    On,
}

#[derive(Clone, Copy)]
struct Checkpoint {
    values: usize,
    mask: u64,
    eqs: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Where,
    On,
}

/// An AND-ed parenthesis (or the whole clause) in a condition: its own
/// conjuncts may bind.
#[derive(Clone, Copy)]
struct Group {
    cp: Checkpoint,
    /// An OR/XOR at this level: nothing found in it binds.
    disjunct: bool,
    /// A BETWEEN waits for its AND.
    between: bool,
    /// Open CASE ... END at this level.
    case: u32,
}

/// A column reference: up to `db.table.column`.
#[derive(Clone, Copy)]
struct ColRef {
    parts: [Token; 3],
    n: usize,
}

enum Simple {
    Done,
    /// Stopped inside an `IN (` list: the parenthesis is open.
    OpenGroup,
}

struct Parser<'a> {
    sql: &'a [u8],
    schema: &'a Schema,
    lex: Lexer<'a>,
    backslash: bool,
    peeked: Option<Token>,
    depth: u32,
    /// Sharded table names not consumed as table references.
    stray: u32,
    stray_in_parens: bool,
    first_stray: Option<Token>,
    insts: SmallVec<[Inst<'a>; 4]>,
    unsharded_tables: bool,
    where_: Sink<'a>,
    on: Sink<'a>,
    eqs: SmallVec<[(u8, u8); 2]>,
    right_join: bool,
    top_or: bool,
    or_voided_key: bool,
    key_vs_expr: bool,
    broken: bool,
    compound: bool,
    more_statements: bool,
    /// `Other` statements: string literals naming a sharded table refuse too
    /// (PREPARE, EXECUTE IMMEDIATE run SQL text).
    check_strings: bool,
    string_names: Option<Token>,
    variable_sql: bool,
    /// The statement's first token.
    lead: Token,
    /// Plain VALUES rows and values are skipped without tokens (off only
    /// in [`analyze_reference`]).
    fast: bool,
}

fn clause_end(kw: Kw) -> bool {
    matches!(
        kw,
        Kw::Group
            | Kw::Order
            | Kw::Limit
            | Kw::Having
            | Kw::Window
            | Kw::For
            | Kw::Lock
            | Kw::Union
            | Kw::Except
            | Kw::Intersect
            | Kw::Minus
            | Kw::Into
            | Kw::Returning
            | Kw::Procedure
    )
}

fn on_end(kw: Kw) -> bool {
    matches!(
        kw,
        Kw::Where
            | Kw::Join
            | Kw::Inner
            | Kw::Cross
            | Kw::Left
            | Kw::Right
            | Kw::Natural
            | Kw::StraightJoin
            | Kw::Full
            | Kw::Set
            | Kw::Using
            | Kw::On
    )
}

/// Words that cannot be an unquoted table alias (they continue the clause).
fn not_alias(kw: Kw) -> bool {
    matches!(
        kw,
        Kw::As
            | Kw::On
            | Kw::Using
            | Kw::Where
            | Kw::Join
            | Kw::Inner
            | Kw::Cross
            | Kw::Left
            | Kw::Right
            | Kw::Natural
            | Kw::StraightJoin
            | Kw::Full
            | Kw::Outer
            | Kw::Set
            | Kw::Group
            | Kw::Order
            | Kw::Limit
            | Kw::Having
            | Kw::Window
            | Kw::For
            | Kw::Lock
            | Kw::Union
            | Kw::Except
            | Kw::Intersect
            | Kw::Minus
            | Kw::Into
            | Kw::Procedure
            | Kw::Returning
            | Kw::Use
            | Kw::Ignore
            | Kw::Force
            | Kw::Partition
            | Kw::Values
            | Kw::Value
            | Kw::Select
            | Kw::Fetch
            | Kw::Offset
            | Kw::From
            | Kw::Duplicate
            | Kw::And
            | Kw::Or
            | Kw::Xor
            | Kw::Not
    )
}

/// Words that shape a condition: never a column of a binding.
fn structural(kw: Kw) -> bool {
    matches!(
        kw,
        Kw::And
            | Kw::Or
            | Kw::Xor
            | Kw::Not
            | Kw::Case
            | Kw::When
            | Kw::Then
            | Kw::Else
            | Kw::End
            | Kw::Between
            | Kw::In
            | Kw::Is
            | Kw::Like
            | Kw::Exists
            | Kw::Null
            | Kw::Binary
            | Kw::Interval
    )
}

/// Charset introducers whose strings keep their bytes for the key: the
/// ASCII-compatible ones (`_latin1`/`_ascii` only for ASCII values, since the
/// server converts other bytes to the column's charset).
fn introducer(word: &[u8]) -> Option<bool> {
    let w = word.strip_prefix(b"_")?;
    for (name, any_bytes) in [
        (&b"utf8mb4"[..], true),
        (b"utf8mb3", true),
        (b"utf8", true),
        (b"binary", true),
        (b"latin1", false),
        (b"ascii", false),
    ] {
        if w.eq_ignore_ascii_case(name) {
            return Some(any_bytes);
        }
    }
    None
}

impl<'a> Parser<'a> {
    fn new(sql: &'a [u8], schema: &'a Schema, opts: &ScanOptions) -> Parser<'a> {
        Parser {
            sql,
            schema,
            lex: Lexer::new(
                sql,
                opts.no_backslash_escapes,
                opts.ansi_quotes,
                opts.server_version,
            ),
            backslash: !opts.no_backslash_escapes,
            peeked: None,
            depth: 0,
            stray: 0,
            stray_in_parens: false,
            first_stray: None,
            insts: SmallVec::new(),
            unsharded_tables: false,
            where_: Sink::default(),
            on: Sink::default(),
            eqs: SmallVec::new(),
            right_join: false,
            top_or: false,
            or_voided_key: false,
            key_vs_expr: false,
            broken: false,
            compound: false,
            more_statements: false,
            check_strings: false,
            string_names: None,
            variable_sql: false,
            fast: true,
            lead: Token {
                kind: Tok::End,
                start: 0,
                end: 0,
                escaped: false,
                after_dot: false,
                index: 0,
                kw: Kw::None,
            },
        }
    }

    // ---- tokens ----

    fn peek(&mut self) -> Token {
        match self.peeked {
            Some(t) => t,
            None => {
                let t = self.lex.next_token();
                self.peeked = Some(t);
                t
            }
        }
    }

    /// Consumes a token, keeping the parenthesis depth and noting every
    /// sharded table name that is not a qualifier (see the module doc).
    fn next(&mut self) -> Token {
        let t = match self.peeked.take() {
            Some(t) => t,
            None => self.lex.next_token(),
        };
        match t.kind {
            Tok::LParen => self.depth += 1,
            Tok::RParen => self.depth = self.depth.saturating_sub(1),
            Tok::Word | Tok::Quoted
                if !self.is_qualifier(t)
                    && self.may_be_sharded(t)
                    && self.lookup_sharded(t).is_some() =>
            {
                self.stray += 1;
                if self.depth > 0 {
                    self.stray_in_parens = true;
                }
                if self.first_stray.is_none() {
                    self.first_stray = Some(t);
                }
            }
            Tok::Str | Tok::NStr if self.check_strings && self.string_names.is_none() => {
                let body = &self.sql[t.start..t.end];
                if self.schema.tables().any(|(name, rule)| {
                    matches!(rule, TableRule::Sharded { .. }) && contains_ci(body, name.as_bytes())
                }) {
                    self.string_names = Some(t);
                }
            }
            Tok::Var if self.check_strings => self.variable_sql = true,
            _ => {}
        }
        t
    }

    /// Whether a name is directly followed by a qualifying `.` (so it is a
    /// database or table qualifier, not a table reference). `` `t`.5 `` is
    /// not one: the server lexes `.5` as a number there.
    fn is_qualifier(&self, t: Token) -> bool {
        self.sql.get(t.end) == Some(&b'.')
            && (t.kind == Tok::Word || !self.sql.get(t.end + 1).is_some_and(u8::is_ascii_digit))
    }

    /// False when `t` cannot spell a sharded table name (escaped quoted
    /// names are always looked up).
    #[inline]
    fn may_be_sharded(&self, t: Token) -> bool {
        if t.kind == Tok::Quoted && t.escaped {
            return true;
        }
        self.schema.may_be_sharded(self.name(t))
    }

    /// The table reference `t` was consumed as such: not a stray.
    fn unstray(&mut self, t: Token) {
        if self.is_qualifier(t) {
            // Never counted (`t.*` in a DELETE target list).
            return;
        }
        self.stray = self.stray.saturating_sub(1);
        if self.first_stray.map(|f| f.start) == Some(t.start) {
            self.first_stray = None;
        }
    }

    fn text(&self, t: Token) -> &'a [u8] {
        &self.sql[t.start..t.end]
    }

    /// An identifier's bytes as written (inside its quotes).
    fn name(&self, t: Token) -> &'a [u8] {
        match t.kind {
            Tok::Quoted => &self.sql[t.start + 1..t.end - 1],
            _ => self.text(t),
        }
    }

    /// An identifier's value (doubled quotes resolved).
    fn ident(&self, t: Token) -> Cow<'a, [u8]> {
        let n = self.name(t);
        if t.kind == Tok::Quoted && t.escaped {
            Cow::Owned(unescape(n, self.sql[t.start], false))
        } else {
            Cow::Borrowed(n)
        }
    }

    fn name_eq(&self, t: Token, s: &[u8]) -> bool {
        matches!(t.kind, Tok::Word | Tok::Quoted) && self.ident(t).eq_ignore_ascii_case(s)
    }

    #[inline]
    fn is_kw(&self, t: Token, kw: Kw) -> bool {
        t.kind == Tok::Word && t.kw == kw
    }

    #[inline]
    fn peek_kw(&mut self, kw: Kw) -> bool {
        let t = self.peek();
        self.is_kw(t, kw)
    }

    #[inline]
    fn peek_any_kw(&mut self, kws: &[Kw]) -> bool {
        let t = self.peek();
        self.is_any_kw(t, kws)
    }

    #[inline]
    fn is_any_kw(&self, t: Token, kws: &[Kw]) -> bool {
        t.kind == Tok::Word && t.kw != Kw::None && kws.contains(&t.kw)
    }

    /// The statement-leading keyword, uppercase, among the ones `analyze`
    /// dispatches on.
    fn upper_kw(&self, t: Token) -> Option<Kw> {
        const LEADING: &[Kw] = &[
            Kw::Select,
            Kw::Insert,
            Kw::Replace,
            Kw::Update,
            Kw::Delete,
            Kw::Set,
            Kw::Use,
            Kw::Begin,
            Kw::Start,
            Kw::Commit,
            Kw::Rollback,
            Kw::Show,
        ];
        LEADING.iter().copied().find(|&k| self.is_kw(t, k))
    }

    fn lookup(&self, t: Token) -> Option<&'a TableRule> {
        if !matches!(t.kind, Tok::Word | Tok::Quoted) {
            return None;
        }
        if t.kind == Tok::Quoted && t.escaped {
            let v = self.ident(t);
            return self
                .schema
                .tables()
                .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(&v))
                .map(|(_, r)| r);
        }
        self.schema.table(self.name(t))
    }

    fn lookup_sharded(&self, t: Token) -> Option<(&'a str, KeyType)> {
        match self.lookup(t)? {
            TableRule::Sharded { key, key_type, .. } => Some((&**key, *key_type)),
            TableRule::Global => None,
        }
    }

    fn skip_group(&mut self) {
        let d = self.depth;
        self.next();
        while self.depth > d {
            let t = self.next();
            if matches!(t.kind, Tok::End | Tok::Error | Tok::Semi) {
                self.broken = true;
                return;
            }
        }
    }

    /// Skips one expression up to a `,` or `)` at depth `d`, or (with
    /// `stop`) a clause keyword at depth `d`.
    fn skip_expr(&mut self, d: u32, stop: &[Kw]) {
        loop {
            let t = self.peek();
            match t.kind {
                Tok::Comma | Tok::RParen if self.depth == d => return,
                Tok::End | Tok::Semi | Tok::Error => return,
                Tok::Word if self.depth == d && self.is_any_kw(t, stop) => return,
                _ => {
                    self.next();
                }
            }
        }
    }

    /// Consumes the rest of the statement (counting placeholders, noting
    /// strays, set operations and further statements).
    fn drain(&mut self) {
        loop {
            let t = self.peek();
            match t.kind {
                Tok::End | Tok::Error => return,
                Tok::Semi => {
                    self.next();
                    if !matches!(self.peek().kind, Tok::End | Tok::Error | Tok::Semi) {
                        self.more_statements = true;
                    }
                }
                Tok::Word
                    if self.depth == 0
                        && self
                            .is_any_kw(t, &[Kw::Union, Kw::Except, Kw::Intersect, Kw::Minus]) =>
                {
                    self.compound = true;
                    self.next();
                }
                _ => {
                    self.next();
                }
            }
        }
    }

    // ---- values ----

    fn literal_start(&self, t: Token) -> bool {
        match t.kind {
            Tok::Number
            | Tok::Str
            | Tok::NStr
            | Tok::Hex
            | Tok::Bit
            | Tok::Placeholder
            | Tok::Minus
            | Tok::Plus => true,
            Tok::Word => {
                !t.after_dot && (self.is_kw(t, Kw::Null) || introducer(self.text(t)).is_some())
            }
            _ => false,
        }
    }

    /// A literal key value: a number (with a sign right before it), a string
    /// (with an introducer, adjacent strings concatenated), a hex or bit
    /// string, NULL or `?`. Consumes what it reads; None for anything else.
    fn literal(&mut self) -> Option<KeyValue<'a>> {
        let t = self.peek();
        match t.kind {
            Tok::Number => {
                self.next();
                Some(KeyValue::Number(Cow::Borrowed(self.text(t))))
            }
            Tok::Minus | Tok::Plus => {
                self.next();
                let n = self.peek();
                if n.kind == Tok::Number && n.start == t.end {
                    self.next();
                    Some(KeyValue::Number(Cow::Borrowed(&self.sql[t.start..n.end])))
                } else {
                    None
                }
            }
            Tok::Placeholder => {
                self.next();
                Some(KeyValue::Placeholder(t.index))
            }
            Tok::Str | Tok::NStr => {
                self.next();
                Some(KeyValue::Str(self.string_value(t)))
            }
            Tok::Hex | Tok::Bit => {
                self.next();
                let body = &self.sql[t.start + 2..t.end - 1];
                let bytes = if t.kind == Tok::Hex {
                    decode_hex(body)?
                } else {
                    decode_bits(body)?
                };
                Some(KeyValue::Binary(Cow::Owned(bytes)))
            }
            Tok::Word if self.is_kw(t, Kw::Null) => {
                self.next();
                Some(KeyValue::Null)
            }
            Tok::Word => {
                let any_bytes = introducer(self.text(t))?;
                self.next();
                let s = self.peek();
                if s.kind != Tok::Str {
                    return None;
                }
                self.next();
                let v = self.string_value(s);
                if !any_bytes && !v.is_ascii() {
                    return None;
                }
                Some(KeyValue::Str(v))
            }
            _ => None,
        }
    }

    fn str_body(&self, t: Token) -> Cow<'a, [u8]> {
        let open = if t.kind == Tok::NStr { 2 } else { 1 };
        let body = &self.sql[t.start + open..t.end - 1];
        if t.escaped {
            Cow::Owned(unescape(body, self.sql[t.end - 1], self.backslash))
        } else {
            Cow::Borrowed(body)
        }
    }

    /// A string literal and the ones right after it (`'ab' 'c'` is 'abc').
    fn string_value(&mut self, first: Token) -> Cow<'a, [u8]> {
        let mut v = self.str_body(first);
        while self.peek().kind == Tok::Str {
            let s = self.next();
            let more = self.str_body(s);
            v.to_mut().extend_from_slice(&more);
        }
        v
    }

    // ---- tables ----

    fn push_inst(&mut self, name: Token, alias: Option<Token>) {
        match self.lookup(name) {
            Some(TableRule::Sharded { key, key_type, .. }) => {
                self.unstray(name);
                if self.insts.len() >= MAX_TABLES {
                    self.broken = true;
                    return;
                }
                self.insts.push(Inst {
                    name,
                    alias,
                    key: Some((&**key, *key_type)),
                });
            }
            _ => {
                self.unsharded_tables = true;
                if self.insts.len() < MAX_TABLES {
                    self.insts.push(Inst {
                        name,
                        alias,
                        key: None,
                    });
                }
            }
        }
    }

    fn alias(&mut self) -> Option<Token> {
        let t = self.peek();
        if self.is_kw(t, Kw::As) {
            self.next();
            let a = self.peek();
            if matches!(a.kind, Tok::Word | Tok::Quoted) {
                self.next();
                return Some(a);
            }
            self.broken = true;
            return None;
        }
        if t.kind == Tok::Quoted || (t.kind == Tok::Word && !not_alias(t.kw)) {
            self.next();
            return Some(t);
        }
        None
    }

    /// `USE|IGNORE|FORCE {INDEX|KEY} [FOR {JOIN|ORDER BY|GROUP BY}] (...)`.
    fn index_hints(&mut self) {
        while self.peek_any_kw(&[Kw::Use, Kw::Ignore, Kw::Force]) {
            self.next();
            if !self.peek_any_kw(&[Kw::Index, Kw::Key]) {
                self.broken = true;
                return;
            }
            self.next();
            if self.peek_kw(Kw::For) {
                self.next();
                self.next();
                if self.peek_kw(Kw::By) {
                    self.next();
                }
            }
            if self.peek().kind == Tok::LParen {
                self.skip_group();
            } else {
                self.broken = true;
                return;
            }
        }
    }

    /// One table of a FROM list. False when it is not one.
    fn table_factor(&mut self) -> bool {
        let t = self.peek();
        match t.kind {
            Tok::LParen => {
                // A derived table or a nested join: anything sharded inside
                // is a stray, and what it reads lives on the designated shard.
                self.skip_group();
                self.unsharded_tables = true;
                self.alias();
                if self.peek().kind == Tok::LParen {
                    self.skip_group();
                }
                true
            }
            Tok::Word | Tok::Quoted if !(t.kind == Tok::Word && not_alias(t.kw)) => {
                self.next();
                let mut name = t;
                if self.peek().kind == Tok::Dot {
                    self.next();
                    let n = self.peek();
                    if matches!(n.kind, Tok::Word | Tok::Quoted) {
                        self.next();
                        name = n;
                    } else if n.kind == Tok::Op && self.text(n) == b"*" {
                        // `t.*` in a multi-table DELETE's target list.
                        self.next();
                        self.push_inst(name, None);
                        return true;
                    } else {
                        return false;
                    }
                }
                if self.peek().kind == Tok::Dot {
                    // `db.t.*`
                    self.next();
                    let n = self.next();
                    if !(n.kind == Tok::Op && self.text(n) == b"*") {
                        return false;
                    }
                    self.push_inst(name, None);
                    return true;
                }
                if name.kind == Tok::Word && self.is_kw(name, Kw::Dual) {
                    return true;
                }
                if self.peek_kw(Kw::Partition) {
                    self.next();
                    if self.peek().kind == Tok::LParen {
                        self.skip_group();
                    }
                }
                let alias = self.alias();
                self.index_hints();
                self.push_inst(name, alias);
                true
            }
            _ => false,
        }
    }

    /// A FROM list: tables, comma joins and JOIN clauses.
    fn table_refs(&mut self) {
        loop {
            if !self.table_factor() {
                self.broken = true;
                return;
            }
            loop {
                let t = self.peek();
                if t.kind != Tok::Word || t.after_dot {
                    break;
                }
                let (inner, natural) = if self.is_any_kw(t, &[Kw::Join, Kw::StraightJoin]) {
                    self.next();
                    (true, false)
                } else if self.is_any_kw(t, &[Kw::Inner, Kw::Cross]) {
                    self.next();
                    if !self.expect_kw(Kw::Join) {
                        return;
                    }
                    (true, false)
                } else if self.is_any_kw(t, &[Kw::Left, Kw::Right]) {
                    if self.is_kw(t, Kw::Right) {
                        self.right_join = true;
                    }
                    self.next();
                    if self.peek_kw(Kw::Outer) {
                        self.next();
                    }
                    if !self.expect_kw(Kw::Join) {
                        return;
                    }
                    (false, false)
                } else if self.is_kw(t, Kw::Natural) {
                    self.next();
                    while self.peek_any_kw(&[Kw::Left, Kw::Right, Kw::Outer, Kw::Inner]) {
                        if self.peek_kw(Kw::Right) {
                            self.right_join = true;
                        }
                        self.next();
                    }
                    if !self.expect_kw(Kw::Join) {
                        return;
                    }
                    (false, true)
                } else {
                    break;
                };
                if !self.table_factor() {
                    self.broken = true;
                    return;
                }
                if natural {
                    continue;
                }
                let t = self.peek();
                if self.is_kw(t, Kw::On) {
                    self.next();
                    self.condition(if inner { Some(SinkId::On) } else { None }, Ctx::On);
                } else if self.is_kw(t, Kw::Using) {
                    self.next();
                    self.using_list();
                }
            }
            if self.peek().kind == Tok::Comma {
                self.next();
                continue;
            }
            return;
        }
    }

    fn expect_kw(&mut self, kw: Kw) -> bool {
        if self.peek_kw(kw) {
            self.next();
            true
        } else {
            self.broken = true;
            false
        }
    }

    /// `USING (a, b)`: equal keys between the table just joined and the one
    /// earlier table with that key column.
    fn using_list(&mut self) {
        if self.peek().kind != Tok::LParen {
            self.broken = true;
            return;
        }
        self.next();
        let new = self.insts.len().saturating_sub(1);
        loop {
            let t = self.next();
            if matches!(t.kind, Tok::Word | Tok::Quoted) {
                if let Some(Inst {
                    key: Some((key, kt)),
                    ..
                }) = self.insts.get(new).copied()
                {
                    if self.name_eq(t, key.as_bytes()) {
                        let earlier: SmallVec<[usize; 2]> = (0..new)
                            .filter(|&i| {
                                matches!(self.insts[i].key, Some((k, ty)) if ty == kt && self.name_eq(t, k.as_bytes()))
                            })
                            .collect();
                        if let [i] = earlier[..] {
                            self.eqs.push((i as u8, new as u8));
                        }
                    }
                }
            } else {
                self.broken = true;
                return;
            }
            match self.next().kind {
                Tok::Comma => continue,
                Tok::RParen => return,
                _ => {
                    self.broken = true;
                    return;
                }
            }
        }
    }

    // ---- conditions ----

    fn sink(&mut self, s: SinkId) -> &mut Sink<'a> {
        match s {
            SinkId::Where => &mut self.where_,
            SinkId::On => &mut self.on,
        }
    }

    fn checkpoint(&mut self, s: Option<SinkId>) -> Checkpoint {
        let eqs = self.eqs.len();
        match s {
            Some(s) => {
                let k = self.sink(s);
                Checkpoint {
                    values: k.values.len(),
                    mask: k.mask,
                    eqs,
                }
            }
            None => Checkpoint {
                values: 0,
                mask: 0,
                eqs,
            },
        }
    }

    fn rollback(&mut self, s: Option<SinkId>, cp: Checkpoint) {
        self.eqs.truncate(cp.eqs);
        if let Some(s) = s {
            let k = self.sink(s);
            k.values.truncate(cp.values);
            k.mask = cp.mask;
        }
    }

    fn ends_condition(&self, t: Token, ctx: Ctx) -> bool {
        match t.kind {
            Tok::End | Tok::Semi | Tok::Error | Tok::RParen => true,
            Tok::Comma => ctx == Ctx::On,
            Tok::Word => clause_end(t.kw) || (ctx == Ctx::On && on_end(t.kw)),
            _ => false,
        }
    }

    fn peek_boundary(&mut self, ctx: Ctx) -> bool {
        let t = self.peek();
        self.is_boundary(t, ctx)
    }

    /// What may follow a binding conjunct.
    fn is_boundary(&self, t: Token, ctx: Ctx) -> bool {
        matches!(t.kind, Tok::AndAnd | Tok::OrOr)
            || self.is_any_kw(t, &[Kw::And, Kw::Or, Kw::Xor])
            || self.ends_condition(t, ctx)
    }

    /// Reads a condition (WHERE or ON) up to its end, recording the bindings
    /// of its top-level conjunction into `sink` (None: key equalities only).
    fn condition(&mut self, sink: Option<SinkId>, ctx: Ctx) {
        let cp = self.checkpoint(sink);
        // AND-ed groups, the clause itself first. Parentheses that are not
        // conjuncts (function calls, NOT (...), IN lists, subqueries, groups
        // nested past MAX_GROUPS) are opaque: only their depth is kept, so
        // memory stays bounded whatever the nesting.
        let mut stack: SmallVec<[Group; 8]> = SmallVec::new();
        stack.push(Group {
            cp,
            disjunct: false,
            between: false,
            case: 0,
        });
        let mut opaque = 0u32;
        let mut at_start = true;
        loop {
            let t = self.peek();
            if matches!(t.kind, Tok::End | Tok::Semi | Tok::Error) {
                break;
            }
            if opaque > 0 {
                self.next();
                match t.kind {
                    Tok::LParen => opaque += 1,
                    Tok::RParen => opaque -= 1,
                    _ => {}
                }
                continue;
            }
            let Some(top) = stack.last().copied() else {
                break;
            };
            if stack.len() == 1 && top.case == 0 && self.ends_condition(t, ctx) {
                break;
            }
            let open = at_start && top.case == 0;
            at_start = false;
            if open && t.kind != Tok::LParen {
                if let Simple::OpenGroup = self.simple(sink, ctx) {
                    opaque = 1;
                }
                continue;
            }
            let t = self.next();
            let depth = stack.len();
            let Some(top) = stack.last_mut() else {
                break;
            };
            match t.kind {
                Tok::LParen if open && depth < MAX_GROUPS => {
                    let cp = self.checkpoint(sink);
                    stack.push(Group {
                        cp,
                        disjunct: false,
                        between: false,
                        case: 0,
                    });
                    at_start = true;
                }
                Tok::LParen => opaque = 1,
                Tok::RParen => {
                    // Never the clause's own level: ends_condition stops
                    // there.
                    if let Some(g) = stack.pop() {
                        if g.disjunct {
                            self.rollback_group(sink, g.cp);
                        } else if !self.peek_boundary(ctx) {
                            self.rollback(sink, g.cp);
                        }
                    }
                }
                Tok::AndAnd => {
                    if top.between {
                        top.between = false;
                    } else {
                        at_start = true;
                    }
                }
                Tok::OrOr => {
                    top.disjunct = true;
                    at_start = true;
                }
                Tok::Word => match t.kw {
                    Kw::And if top.between => top.between = false,
                    Kw::And => at_start = true,
                    Kw::Or | Kw::Xor => {
                        top.disjunct = true;
                        at_start = true;
                    }
                    Kw::Between => top.between = true,
                    Kw::Case => top.case += 1,
                    Kw::End => top.case = top.case.saturating_sub(1),
                    _ => {}
                },
                _ => {}
            }
        }
        if stack.len() != 1 || opaque > 0 {
            // Unbalanced: the server rejects it; bind nothing.
            self.broken = true;
            self.rollback(sink, cp);
            return;
        }
        if stack[0].disjunct {
            self.rollback(sink, cp);
            if ctx == Ctx::Where {
                self.top_or = true;
            }
        }
    }

    /// Voids what an AND-ed parenthesis bound; if it held a key binding
    /// voided by its own OR, that is the reason to give.
    fn rollback_group(&mut self, sink: Option<SinkId>, cp: Checkpoint) {
        if let Some(s) = sink {
            let k = self.sink(s);
            if k.values.len() > cp.values || k.mask != cp.mask {
                self.or_voided_key = true;
            }
        }
        self.rollback(sink, cp);
    }

    /// A column reference that may name a key: consumes qualifiers, and a
    /// bare name only when it is some sharded table's key column.
    fn colref(&mut self) -> Option<ColRef> {
        let t = self.peek();
        if !matches!(t.kind, Tok::Word | Tok::Quoted) || (t.kind == Tok::Word && structural(t.kw)) {
            return None;
        }
        let mut c = ColRef {
            parts: [t; 3],
            n: 0,
        };
        loop {
            let t = self.peek();
            if !matches!(t.kind, Tok::Word | Tok::Quoted) {
                return None;
            }
            let qualifier = self.is_qualifier(t);
            if !qualifier && c.n == 0 && !self.is_some_key(t) {
                return None;
            }
            self.next();
            c.parts[c.n] = t;
            c.n += 1;
            if !qualifier || self.peek().kind != Tok::Dot {
                return Some(c);
            }
            if c.n == 3 {
                return None;
            }
            self.next();
        }
    }

    fn is_some_key(&self, t: Token) -> bool {
        self.insts
            .iter()
            .any(|i| matches!(i.key, Some((k, _)) if self.name_eq(t, k.as_bytes())))
    }

    /// The sharded table instances whose key `c` names.
    fn resolve(&self, c: &ColRef) -> u64 {
        let col = c.parts[c.n - 1];
        let mut mask = 0u64;
        for (i, inst) in self.insts.iter().enumerate() {
            let Some((key, _)) = inst.key else { continue };
            if !self.name_eq(col, key.as_bytes()) {
                continue;
            }
            let ok = match c.n {
                1 => true,
                2 => {
                    let q = c.parts[0];
                    match inst.alias {
                        Some(a) => self.ident(q).eq_ignore_ascii_case(&self.ident(a)),
                        None => self.ident(q).eq_ignore_ascii_case(&self.ident(inst.name)),
                    }
                }
                _ => {
                    inst.alias.is_none()
                        && self
                            .ident(c.parts[1])
                            .eq_ignore_ascii_case(&self.ident(inst.name))
                }
            };
            if ok {
                mask |= 1 << i;
            }
        }
        mask
    }

    fn record(&mut self, sink: Option<SinkId>, mask: u64, v: KeyValue<'a>) {
        if let Some(s) = sink {
            let k = self.sink(s);
            k.values.push(v);
            k.mask |= mask;
        }
    }

    /// Reads a conjunct that may bind: `key = lit`, `lit = key`,
    /// `key <=> lit`, `key IN (lits)`, `a.key = b.key`. Consumes only tokens
    /// that do not shape the condition (names, literals, `=`), so the caller
    /// goes on from wherever it stopped.
    fn simple(&mut self, sink: Option<SinkId>, ctx: Ctx) -> Simple {
        let t = self.peek();
        if self.literal_start(t) {
            let Some(v) = self.literal() else {
                return Simple::Done;
            };
            let op = self.peek();
            if !matches!(op.kind, Tok::Eq | Tok::NullSafeEq) {
                return Simple::Done;
            }
            self.next();
            let Some(c) = self.colref() else {
                return Simple::Done;
            };
            let mask = self.resolve(&c);
            if mask == 0 {
                return Simple::Done;
            }
            if !self.peek_boundary(ctx) {
                self.key_vs_expr = true;
                return Simple::Done;
            }
            if !(op.kind == Tok::NullSafeEq && v == KeyValue::Null) {
                self.record(sink, mask, v);
            }
            return Simple::Done;
        }
        let Some(c) = self.colref() else {
            return Simple::Done;
        };
        let mask = self.resolve(&c);
        if mask == 0 {
            return Simple::Done;
        }
        let op = self.peek();
        match op.kind {
            Tok::Eq | Tok::NullSafeEq => {
                self.next();
                let r = self.peek();
                if self.literal_start(r) {
                    match self.literal() {
                        Some(v) => {
                            let nx = self.peek();
                            if self.is_kw(nx, Kw::Collate) || !self.is_boundary(nx, ctx) {
                                self.key_vs_expr = true;
                            } else if !(op.kind == Tok::NullSafeEq && v == KeyValue::Null) {
                                self.record(sink, mask, v);
                            }
                        }
                        None => self.key_vs_expr = true,
                    }
                    return Simple::Done;
                }
                if let Some(c2) = self.colref() {
                    let m2 = self.resolve(&c2);
                    if m2 != 0
                        && mask.count_ones() == 1
                        && m2.count_ones() == 1
                        && self.peek_boundary(ctx)
                    {
                        let (i, j) = (mask.trailing_zeros() as usize, m2.trailing_zeros() as usize);
                        let same_type = matches!(
                            (self.insts[i].key, self.insts[j].key),
                            (Some((_, a)), Some((_, b))) if a == b
                        );
                        if same_type {
                            self.eqs.push((i as u8, j as u8));
                        }
                        return Simple::Done;
                    }
                }
                self.key_vs_expr = true;
                Simple::Done
            }
            Tok::Word if self.is_kw(op, Kw::In) => {
                self.next();
                if self.peek().kind != Tok::LParen {
                    self.key_vs_expr = true;
                    return Simple::Done;
                }
                self.next();
                let cp = self.checkpoint(sink);
                loop {
                    let t = self.peek();
                    if self.literal_start(t) {
                        if let Some(v) = self.literal() {
                            let nx = self.peek();
                            if matches!(nx.kind, Tok::Comma | Tok::RParen) {
                                self.next();
                                self.record(sink, 0, v);
                                if nx.kind == Tok::RParen {
                                    break;
                                }
                                continue;
                            }
                        }
                    }
                    // Not a list of literals: the parenthesis stays open
                    // for the caller.
                    self.rollback(sink, cp);
                    self.key_vs_expr = true;
                    return Simple::OpenGroup;
                }
                if self.peek_boundary(ctx) {
                    if let Some(s) = sink {
                        self.sink(s).mask |= mask;
                    }
                } else {
                    self.rollback(sink, cp);
                    self.key_vs_expr = true;
                }
                Simple::Done
            }
            _ => Simple::Done,
        }
    }

    // ---- statements ----

    fn select(&mut self) {
        self.next();
        loop {
            let t = self.peek();
            match t.kind {
                Tok::End | Tok::Semi | Tok::Error => return,
                Tok::Word if self.depth == 0 && self.is_kw(t, Kw::From) => {
                    self.next();
                    break;
                }
                Tok::Word
                    if self.depth == 0
                        && self
                            .is_any_kw(t, &[Kw::Union, Kw::Except, Kw::Intersect, Kw::Minus]) =>
                {
                    self.compound = true;
                    self.next();
                }
                _ => {
                    self.next();
                }
            }
        }
        self.table_refs();
        self.where_clause();
    }

    fn where_clause(&mut self) {
        let t = self.peek();
        if self.is_kw(t, Kw::Where) {
            self.next();
            self.condition(Some(SinkId::Where), Ctx::Where);
        } else if !self.ends_condition(t, Ctx::Where) || t.kind == Tok::RParen {
            self.broken = true;
        }
    }

    /// A table name, maybe `db.`-qualified: the table's token.
    fn table_name(&mut self) -> Option<Token> {
        let t = self.peek();
        if !matches!(t.kind, Tok::Word | Tok::Quoted) {
            return None;
        }
        self.next();
        if self.peek().kind == Tok::Dot {
            self.next();
            let n = self.peek();
            if !matches!(n.kind, Tok::Word | Tok::Quoted) {
                return None;
            }
            self.next();
            return Some(n);
        }
        Some(t)
    }

    /// A column name of an assignment or column list, up to 3 parts.
    fn name_path(&mut self) -> Option<ColRef> {
        let t = self.peek();
        if !matches!(t.kind, Tok::Word | Tok::Quoted) {
            return None;
        }
        let mut c = ColRef {
            parts: [t; 3],
            n: 0,
        };
        loop {
            let t = self.peek();
            if !matches!(t.kind, Tok::Word | Tok::Quoted) || c.n == 3 {
                return None;
            }
            self.next();
            c.parts[c.n] = t;
            c.n += 1;
            if self.peek().kind != Tok::Dot {
                return Some(c);
            }
            self.next();
        }
    }

    fn insert(&mut self) -> Result<(), Refusal> {
        self.next();
        while self.peek_any_kw(&[Kw::LowPriority, Kw::Delayed, Kw::HighPriority, Kw::Ignore]) {
            self.next();
        }
        if self.peek_kw(Kw::Into) {
            self.next();
        }
        let Some(name) = self.table_name() else {
            self.broken = true;
            return Ok(());
        };
        let Some((key, _)) = self.lookup_sharded(name) else {
            // Unsharded target: whatever else it names is checked as strays.
            self.unsharded_tables = true;
            return Ok(());
        };
        self.push_inst(name, None);
        let refuse = |p: &Parser<'a>, reason| Err(p.refusal(name, key, reason));
        if self.peek_kw(Kw::Partition) {
            self.next();
            if self.peek().kind == Tok::LParen {
                self.skip_group();
            }
        }
        let t = self.peek();
        let query_words: &[Kw] = &[Kw::Select, Kw::With, Kw::Table, Kw::Values];
        if t.kind == Tok::LParen {
            self.next();
            let first = self.peek();
            if first.kind == Tok::LParen || self.is_any_kw(first, query_words) {
                return refuse(self, RefusalReason::InsertWithoutValues);
            }
            let mut key_at = None;
            let mut n = 0usize;
            if first.kind == Tok::RParen {
                self.next();
            } else {
                loop {
                    let Some(c) = self.name_path() else {
                        self.broken = true;
                        return Ok(());
                    };
                    if key_at.is_none() && self.name_eq(c.parts[c.n - 1], key.as_bytes()) {
                        key_at = Some(n);
                    }
                    n += 1;
                    match self.next().kind {
                        Tok::Comma => continue,
                        Tok::RParen => break,
                        _ => {
                            self.broken = true;
                            return Ok(());
                        }
                    }
                }
            }
            let t = self.peek();
            if self.is_any_kw(t, &[Kw::Values, Kw::Value]) {
                self.next();
            } else if t.kind == Tok::LParen || self.is_any_kw(t, &[Kw::Select, Kw::With, Kw::Table])
            {
                return refuse(self, RefusalReason::InsertWithoutValues);
            } else {
                self.broken = true;
                return Ok(());
            }
            let Some(k) = key_at else {
                return refuse(self, RefusalReason::KeyNotInInsertColumns);
            };
            self.rows(k, name, key)?;
        } else if self.is_any_kw(t, &[Kw::Values, Kw::Value]) {
            // The table's column order is not in the configuration.
            return refuse(self, RefusalReason::NoKey);
        } else if self.is_kw(t, Kw::Set) {
            self.next();
            self.insert_set(name, key)?;
        } else if self.is_any_kw(t, &[Kw::Select, Kw::With, Kw::Table]) {
            return refuse(self, RefusalReason::InsertWithoutValues);
        } else {
            self.broken = true;
            return Ok(());
        }
        let t = self.peek();
        if self.is_kw(t, Kw::On) {
            self.next();
            for w in [Kw::Duplicate, Kw::Key, Kw::Update] {
                if !self.expect_kw(w) {
                    return Ok(());
                }
            }
            self.assignments(name, key, &[Kw::Returning])?;
        } else if !(matches!(t.kind, Tok::End | Tok::Semi | Tok::Error)
            || self.is_kw(t, Kw::Returning))
        {
            self.broken = true;
        }
        Ok(())
    }

    /// VALUES rows: the `k`-th item of every row is the key.
    fn rows(&mut self, k: usize, name: Token, key: &'a str) -> Result<(), Refusal> {
        // NULL is skipped as a plain value unless a sharded table may be
        // named `null` (then the token path must see it, as a stray).
        let null_plain = !self.schema.may_be_sharded(b"null");
        loop {
            // Most rows hold only literals: read whole, without tokens (the
            // hot loop of a bulk INSERT). Other rows take the token path.
            let plain = if self.fast && self.peeked.is_none() {
                self.lex.plain_row(k, null_plain)
            } else {
                None
            };
            match plain {
                Some(row) => {
                    let t = row.key;
                    let v = match t.kind {
                        Tok::Placeholder => KeyValue::Placeholder(t.index),
                        Tok::Str => KeyValue::Str(self.str_body(t)),
                        _ => KeyValue::Number(Cow::Borrowed(self.text(t))),
                    };
                    self.where_.values.push(v);
                    if row.more {
                        continue;
                    }
                    // What follows (maybe a comment, then a `,`) is the
                    // token path's to read.
                }
                None => {
                    if !self.token_row(k, name, key, null_plain)? {
                        return Ok(());
                    }
                }
            }
            if self.peek().kind != Tok::Comma {
                self.where_.mask |= 1;
                return Ok(());
            }
            self.next();
        }
    }

    /// One VALUES row, token by token: false when it is broken (and
    /// `broken` is set).
    fn token_row(
        &mut self,
        k: usize,
        name: Token,
        key: &'a str,
        null_plain: bool,
    ) -> Result<bool, Refusal> {
        if self.peek().kind != Tok::LParen {
            self.broken = true;
            return Ok(false);
        }
        self.next();
        let d = self.depth;
        let mut i = 0usize;
        let mut got = false;
        loop {
            if i == k {
                self.insert_key_literal(name, key, |_, nx| {
                    matches!(nx.kind, Tok::Comma | Tok::RParen)
                })?;
                got = true;
            } else {
                // Most values are plain numbers and strings: skipped byte
                // by byte, without tokens. Anything else takes the token
                // path.
                if self.fast && self.peeked.is_none() {
                    match self.lex.skip_plain_value(null_plain) {
                        Some(b',') => {
                            i += 1;
                            continue;
                        }
                        Some(_) => {
                            self.depth = self.depth.saturating_sub(1);
                            break;
                        }
                        None => {}
                    }
                }
                self.skip_expr(d, &[]);
            }
            match self.next().kind {
                Tok::Comma => i += 1,
                Tok::RParen => break,
                _ => {
                    self.broken = true;
                    return Ok(false);
                }
            }
        }
        if !got {
            self.broken = true;
            return Ok(false);
        }
        Ok(true)
    }

    /// The key's value in an INSERT (in a VALUES row, or `key = ...` of
    /// INSERT ... SET): a literal that `ends` says is the whole value. NULL
    /// and anything longer (an expression) are refused.
    fn insert_key_literal(
        &mut self,
        name: Token,
        key: &'a str,
        ends: impl Fn(&Self, Token) -> bool,
    ) -> Result<(), Refusal> {
        let value = self.literal();
        let next = self.peek();
        match value {
            Some(KeyValue::Null) => Err(self.refusal(name, key, RefusalReason::InsertNullKey)),
            Some(v) if ends(self, next) => {
                self.where_.values.push(v);
                Ok(())
            }
            _ => Err(self.refusal(name, key, RefusalReason::KeyComparedWithExpression)),
        }
    }

    /// `INSERT ... SET col = value, ...`
    fn insert_set(&mut self, name: Token, key: &'a str) -> Result<(), Refusal> {
        let stop: &[Kw] = &[Kw::On, Kw::Returning];
        let mut found = false;
        loop {
            let Some(c) = self.name_path() else {
                self.broken = true;
                return Ok(());
            };
            if self.peek().kind != Tok::Eq {
                self.broken = true;
                return Ok(());
            }
            self.next();
            if self.name_eq(c.parts[c.n - 1], key.as_bytes()) {
                self.insert_key_literal(name, key, |p, nx| {
                    matches!(nx.kind, Tok::Comma | Tok::End | Tok::Semi) || p.is_any_kw(nx, stop)
                })?;
                found = true;
            } else {
                self.skip_expr(0, stop);
            }
            if self.peek().kind != Tok::Comma {
                break;
            }
            self.next();
        }
        if !found {
            return Err(self.refusal(name, key, RefusalReason::KeyNotInInsertColumns));
        }
        self.where_.mask |= 1;
        Ok(())
    }

    /// ON DUPLICATE KEY UPDATE assignments: the key must not be assigned.
    fn assignments(&mut self, name: Token, key: &'a str, stop: &[Kw]) -> Result<(), Refusal> {
        loop {
            let Some(c) = self.name_path() else {
                self.broken = true;
                return Ok(());
            };
            if self.name_eq(c.parts[c.n - 1], key.as_bytes()) {
                return Err(self.refusal(name, key, RefusalReason::UpdateAssignsKey));
            }
            if self.peek().kind != Tok::Eq {
                self.broken = true;
                return Ok(());
            }
            self.next();
            self.skip_expr(0, stop);
            if self.peek().kind != Tok::Comma {
                return Ok(());
            }
            self.next();
        }
    }

    fn update(&mut self) -> Result<(), Refusal> {
        self.next();
        while self.peek_any_kw(&[Kw::LowPriority, Kw::Ignore]) {
            self.next();
        }
        self.table_refs();
        if !self.expect_kw(Kw::Set) {
            return Ok(());
        }
        let stop: &[Kw] = &[Kw::Where, Kw::Order, Kw::Limit, Kw::Returning];
        loop {
            let Some(c) = self.name_path() else {
                self.broken = true;
                return Ok(());
            };
            // An unqualified key name is the key of some table here, or
            // ambiguous (and rejected by the server).
            if self.resolve(&c) != 0 {
                let inst = self.insts[self.resolve(&c).trailing_zeros() as usize];
                let key = inst.key.map_or("", |k| k.0);
                return Err(self.refusal(inst.name, key, RefusalReason::UpdateAssignsKey));
            }
            if self.peek().kind != Tok::Eq {
                self.broken = true;
                return Ok(());
            }
            self.next();
            self.skip_expr(0, stop);
            if self.peek().kind != Tok::Comma {
                break;
            }
            self.next();
        }
        self.where_clause();
        Ok(())
    }

    fn delete(&mut self) {
        self.next();
        while self.peek_any_kw(&[Kw::LowPriority, Kw::Quick, Kw::Ignore]) {
            self.next();
        }
        if self.peek_kw(Kw::From) {
            self.next();
            let targets = self.insts.len();
            self.table_refs();
            if self.peek_kw(Kw::Using) {
                // `DELETE FROM t1, t2 USING <tables>`: the first list only
                // names tables of the second.
                self.next();
                self.insts.truncate(targets);
                self.table_refs();
            }
        } else {
            // `DELETE t1, t2 FROM <tables>`
            let targets = self.insts.len();
            self.table_refs();
            if !self.expect_kw(Kw::From) {
                return;
            }
            self.insts.truncate(targets);
            self.table_refs();
        }
        self.where_clause();
    }

    fn set(&mut self) -> StatementKind {
        self.next();
        if self.peek_kw(Kw::Statement) {
            // `SET STATEMENT var=value FOR <statement>` runs the statement.
            return StatementKind::Other;
        }
        StatementKind::Set
    }

    fn begin(&mut self) -> StatementKind {
        let first = self.next();
        let t = self.peek();
        if self.is_kw(first, Kw::Start) {
            return if self.is_kw(t, Kw::Transaction) {
                StatementKind::Begin
            } else {
                StatementKind::Other
            };
        }
        if self.is_kw(t, Kw::Work) {
            self.next();
        }
        if matches!(self.peek().kind, Tok::End | Tok::Semi) {
            StatementKind::Begin
        } else {
            StatementKind::Other
        }
    }

    fn rollback_stmt(&mut self) -> StatementKind {
        self.next();
        if self.peek_kw(Kw::Work) {
            self.next();
        }
        if self.peek_kw(Kw::To) {
            StatementKind::Other
        } else {
            StatementKind::Rollback
        }
    }

    // ---- the verdict ----

    fn refusal(&self, table: Token, key: &str, reason: RefusalReason) -> Refusal {
        Refusal {
            table: String::from_utf8_lossy(self.name(table)).into_owned(),
            column: key.to_string(),
            reason,
        }
    }

    fn refuse_first(&self, reason: RefusalReason) -> Refusal {
        match self.insts.iter().find_map(|i| Some((i.name, i.key?.0))) {
            Some((name, key)) => self.refusal(name, key, reason),
            None => Refusal {
                table: String::new(),
                column: String::new(),
                reason,
            },
        }
    }

    /// A refusal naming the first sharded table of the schema whose name
    /// appears in the statement text (or in the schema at all).
    fn refuse_by_text(&self, anywhere: bool) -> Option<Refusal> {
        self.schema.tables().find_map(|(name, rule)| match rule {
            TableRule::Sharded { key, .. }
                if anywhere || contains_ci(self.sql, name.as_bytes()) =>
            {
                Some(Refusal {
                    table: name.to_string(),
                    column: key.to_string(),
                    reason: RefusalReason::NotUnderstood,
                })
            }
            _ => None,
        })
    }

    fn finish(&mut self, kind: StatementKind) -> Result<Analysis<'a>, Refusal> {
        if kind == StatementKind::Other {
            self.check_strings = true;
        }
        self.drain();
        let placeholders = self.lex.placeholders();
        let unsharded = |p: &Parser<'a>| {
            Ok(Analysis {
                kind,
                target: Target::Unsharded,
                placeholders,
                unsharded_tables: p.unsharded_tables,
            })
        };
        if self.lex.errored {
            // Unterminated: which names are tables cannot be told. The
            // server rejects the statement anyway; refuse if it could be
            // about a sharded table.
            return match self.refuse_by_text(false) {
                Some(r) => Err(r),
                None => unsharded(self),
            };
        }
        let counts_strays = match kind {
            StatementKind::Use
            | StatementKind::Begin
            | StatementKind::Commit
            | StatementKind::Rollback => false,
            StatementKind::Show => self.stray_in_parens,
            _ => true,
        };
        if counts_strays && self.stray > 0 {
            let t = self
                .first_stray
                .or_else(|| self.insts.iter().find(|i| i.key.is_some()).map(|i| i.name));
            let reason = if self.stray_in_parens
                && matches!(
                    kind,
                    StatementKind::Select
                        | StatementKind::Insert
                        | StatementKind::Replace
                        | StatementKind::Update
                        | StatementKind::Delete
                ) {
                RefusalReason::KeyOnlyInSubquery
            } else {
                RefusalReason::NotUnderstood
            };
            return Err(
                match t.and_then(|t| self.lookup_sharded(t).map(|k| (t, k.0))) {
                    Some((t, key)) => self.refusal(t, key, reason),
                    None => self.refuse_first(reason),
                },
            );
        }
        if kind == StatementKind::Other {
            if self.string_names.is_some() {
                if let Some(r) = self.refuse_by_text(false) {
                    return Err(r);
                }
            }
            if self.variable_sql
                && (self.is_kw(self.lead, Kw::Prepare) || self.is_kw(self.lead, Kw::Execute))
            {
                // SQL text from a variable: cannot be seen.
                if let Some(r) = self.refuse_by_text(true) {
                    return Err(r);
                }
            }
        }
        if !self.insts.iter().any(|i| i.key.is_some()) {
            return unsharded(self);
        }
        if self.broken || self.compound || self.more_statements {
            return Err(self.refuse_first(RefusalReason::NotUnderstood));
        }
        // One key type for all: the caller hashes every value the same way.
        let mut types = self.insts.iter().filter_map(|i| i.key.map(|k| k.1));
        let t0 = types.next();
        if types.any(|t| Some(t) != t0) {
            return Err(self.refuse_first(RefusalReason::MixedTables));
        }
        // Every sharded table must be bound, directly or through key
        // equalities with a bound one.
        let n = self.insts.len();
        let mut parent: SmallVec<[u8; 8]> = (0..n as u8).collect();
        fn find(p: &mut [u8], mut i: usize) -> usize {
            while p[i] as usize != i {
                p[i] = p[p[i] as usize];
                i = p[i] as usize;
            }
            i
        }
        for &(a, b) in &self.eqs {
            let (ra, rb) = (find(&mut parent, a as usize), find(&mut parent, b as usize));
            parent[ra] = rb as u8;
        }
        let on_binds = !self.right_join;
        let bound = self.where_.mask | if on_binds { self.on.mask } else { 0 };
        let mut comp_bound: SmallVec<[bool; 8]> = SmallVec::from_elem(false, n);
        for i in 0..n {
            if bound & (1 << i) != 0 {
                let r = find(&mut parent, i);
                comp_bound[r] = true;
            }
        }
        let all_bound = (0..n).all(|i| {
            self.insts[i].key.is_none() || {
                let r = find(&mut parent, i);
                comp_bound[r]
            }
        });
        if !all_bound {
            let reason = if bound != 0 {
                RefusalReason::MixedTables
            } else if self.top_or || self.or_voided_key {
                RefusalReason::TopLevelOr
            } else if self.key_vs_expr {
                RefusalReason::KeyComparedWithExpression
            } else {
                RefusalReason::NoKey
            };
            return Err(self.refuse_first(reason));
        }
        let mut values = std::mem::take(&mut self.where_.values);
        if on_binds {
            values.extend(std::mem::take(&mut self.on.values));
        }
        let (table, column) = self
            .insts
            .iter()
            .find_map(|i| Some((self.name(i.name), i.key?.0.as_bytes())))
            .unwrap_or((b"", b""));
        Ok(Analysis {
            kind,
            target: Target::Keys {
                table,
                column,
                values,
            },
            placeholders,
            unsharded_tables: self.unsharded_tables,
        })
    }
}

fn decode_hex(body: &[u8]) -> Option<Vec<u8>> {
    if body.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    body.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// `b'1010'`: bits, right-aligned in whole bytes.
fn decode_bits(body: &[u8]) -> Option<Vec<u8>> {
    if !body.iter().all(|c| matches!(c, b'0' | b'1')) {
        return None;
    }
    let mut out = vec![0u8; body.len().div_ceil(8)];
    for (i, &c) in body.iter().rev().enumerate() {
        if c == b'1' {
            let byte = out.len() - 1 - i / 8;
            out[byte] |= 1 << (i % 8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
