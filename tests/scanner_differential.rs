//! The scanner against a full SQL parser: on every generated statement the
//! scanner must route exactly as the oracle does, or refuse. Never route
//! differently.
//!
//! The oracle is sqlparser (MySqlDialect) plus the routing rules applied to
//! its AST, written independently of the scanner: the set of key values that
//! bind every row (outermost WHERE conjunction and inner-join ON clauses,
//! literals only; every row of an INSERT), or "unsharded" when no sharded
//! table is named anywhere, or "not routable".
//!
//! The generator is a seeded xorshift: the same statements on every run. It
//! renders each statement twice: the text the scanner reads, and the text the
//! oracle reads, where what sqlparser cannot model is resolved the way the
//! server resolves it (versioned comments inlined or dropped, ANSI_QUOTES
//! identifiers backquoted). `SCANNER_DIFF_N` sets the count (default
//! 100,000), `SCANNER_DIFF_SEED` the seed.

#![allow(dead_code)]

use std::collections::BTreeSet;

use dbrouter::route::scanner::{
    analyze, analyze_point_select, analyze_reference, ScanOptions, Target,
};
use dbrouter::route::schema::{KeyType, MissingKey, Schema, TableRule};
use dbrouter::route::value::KeyValue;

pub const SERVER_VERSION: u32 = 101119;

/// Sharded tables: (name, key, type). `events` has another key name, and
/// `accounts` another key type.
pub const SHARDED: &[(&str, &str, KeyType)] = &[
    ("users", "userid", KeyType::Int),
    ("orders", "userid", KeyType::Int),
    ("events", "uid", KeyType::Int),
    ("accounts", "name", KeyType::StringCaseInsensitive),
];

pub fn schema() -> Schema {
    let mut s = Schema::new().with_table("countries", TableRule::Global);
    for &(t, k, ty) in SHARDED {
        s = s.with_table(
            t,
            TableRule::Sharded {
                key: k.into(),
                key_type: ty,
                missing_key: MissingKey::Error,
            },
        );
    }
    s
}

/// What a statement routes to, in a form both sides produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Unsharded,
    Keys(BTreeSet<String>),
    Refused,
}

/// The scanner's answer.
pub fn scanner_outcome(sql: &[u8], schema: &Schema, opts: &ScanOptions) -> Outcome {
    match analyze(sql, schema, opts) {
        Ok(a) => match a.target {
            Target::Unsharded => Outcome::Unsharded,
            Target::Keys { values, .. } => Outcome::Keys(values.iter().map(render).collect()),
        },
        Err(_) => Outcome::Refused,
    }
}

fn hex_norm(digits: &str) -> String {
    let d = digits.to_ascii_lowercase();
    if d.len() % 2 == 1 {
        format!("hex:0{d}")
    } else {
        format!("hex:{d}")
    }
}

pub fn render(v: &KeyValue<'_>) -> String {
    match v {
        KeyValue::Number(n) => {
            let n = String::from_utf8_lossy(n);
            // 0x2A and x'2A' are one token kind to sqlparser.
            match n.strip_prefix("0x") {
                Some(h) => hex_norm(h),
                None => format!("n:{n}"),
            }
        }
        KeyValue::Str(s) => format!("s:{}", String::from_utf8_lossy(s)),
        KeyValue::Binary(b) => format!(
            "hex:{}",
            b.iter().map(|c| format!("{c:02x}")).collect::<String>()
        ),
        KeyValue::Placeholder(i) => format!("?{i}"),
        KeyValue::Null => "null".into(),
        KeyValue::Int(i) => format!("n:{i}"),
        KeyValue::UInt(i) => format!("n:{i}"),
    }
}

pub mod oracle {
    //! Routing rules on sqlparser's AST.

    use super::{hex_norm, Outcome, SHARDED};
    use sqlparser::ast::{
        AssignmentTarget, BinaryOperator, Expr, FromTable, JoinConstraint, JoinOperator,
        ObjectName, OnInsert, SetExpr, Statement, TableFactor, TableObject, TableWithJoins,
        UnaryOperator, Value,
    };
    use sqlparser::dialect::MySqlDialect;
    use sqlparser::parser::Parser;
    use std::collections::BTreeSet;
    use std::ops::ControlFlow;

    use dbrouter::route::schema::KeyType;

    /// None: sqlparser cannot parse it (or it is not one statement).
    pub fn outcome(sql: &str) -> Option<Outcome> {
        let stmts = Parser::parse_sql(&MySqlDialect {}, sql).ok()?;
        let [stmt] = &stmts[..] else {
            return None;
        };
        let mut sharded_refs = 0usize;
        let _ = sqlparser::ast::visit_relations(stmt, |name: &ObjectName| {
            if sharded(&last(name)).is_some() {
                sharded_refs += 1;
            }
            ControlFlow::<()>::Continue(())
        });
        if sharded_refs == 0 {
            return Some(Outcome::Unsharded);
        }
        let mut o = Oracle {
            sql,
            insts: Vec::new(),
            values: BTreeSet::new(),
            on_values: BTreeSet::new(),
            bound: Vec::new(),
            on_bound: Vec::new(),
            eqs: Vec::new(),
            right_join: false,
            outer: false,
            nested: false,
        };
        Some(o.statement(stmt, sharded_refs).unwrap_or(Outcome::Refused))
    }

    fn last(name: &ObjectName) -> String {
        name.0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase())
            .unwrap_or_default()
    }

    fn sharded(table: &str) -> Option<(&'static str, KeyType)> {
        SHARDED
            .iter()
            .find(|(t, _, _)| t.eq_ignore_ascii_case(table))
            .map(|&(_, k, ty)| (k, ty))
    }

    struct Inst {
        name: String,
        alias: Option<String>,
        key: Option<(&'static str, KeyType)>,
    }

    struct Oracle<'s> {
        sql: &'s str,
        insts: Vec<Inst>,
        values: BTreeSet<String>,
        on_values: BTreeSet<String>,
        bound: Vec<usize>,
        on_bound: Vec<usize>,
        eqs: Vec<(usize, usize)>,
        right_join: bool,
        outer: bool,
        nested: bool,
    }

    impl Oracle<'_> {
        fn statement(&mut self, stmt: &Statement, sharded_refs: usize) -> Option<Outcome> {
            match stmt {
                Statement::Query(q) => {
                    if q.with.is_some() {
                        return None;
                    }
                    let SetExpr::Select(s) = &*q.body else {
                        return None;
                    };
                    self.from(&s.from)?;
                    self.all_top_level(sharded_refs)?;
                    if let Some(w) = &s.selection {
                        self.condition(w, true, false);
                    }
                    self.verdict()
                }
                Statement::Update(u) => {
                    if u.from.is_some() {
                        return None;
                    }
                    self.from(std::slice::from_ref(&u.table))?;
                    self.all_top_level(sharded_refs)?;
                    for a in &u.assignments {
                        let AssignmentTarget::ColumnName(n) = &a.target else {
                            return None;
                        };
                        if !self.resolve(&idents(n)).is_empty() {
                            return None;
                        }
                    }
                    if let Some(w) = &u.selection {
                        self.condition(w, true, false);
                    }
                    self.verdict()
                }
                Statement::Delete(d) => {
                    let from = match &d.from {
                        FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => f,
                    };
                    match &d.using {
                        Some(using) => self.from(using)?,
                        None => self.from(from)?,
                    }
                    // Targets name instances of the FROM/USING list by
                    // alias (the generator never names them otherwise).
                    self.all_top_level(sharded_refs)?;
                    if let Some(w) = &d.selection {
                        self.condition(w, true, false);
                    }
                    self.verdict()
                }
                Statement::Insert(ins) => {
                    let TableObject::TableName(name) = &ins.table else {
                        return None;
                    };
                    let (key, _) = sharded(&last(name))?;
                    if sharded_refs != 1 {
                        return None;
                    }
                    let mut values = BTreeSet::new();
                    if ins.source.is_none() {
                        let mut found = false;
                        for a in &ins.assignments {
                            let AssignmentTarget::ColumnName(n) = &a.target else {
                                return None;
                            };
                            if idents(n).last()?.eq_ignore_ascii_case(key) {
                                values.insert(self.literal(&a.value)?);
                                found = true;
                            }
                        }
                        if !found {
                            return None;
                        }
                    } else {
                        let q = ins.source.as_ref()?;
                        let SetExpr::Values(v) = &*q.body else {
                            return None;
                        };
                        let at = ins.columns.iter().position(|c| {
                            idents(c)
                                .last()
                                .is_some_and(|l| l.eq_ignore_ascii_case(key))
                        })?;
                        for row in &v.rows {
                            values.insert(self.literal(row.content.get(at)?)?);
                        }
                    }
                    if values.contains("null") {
                        return None;
                    }
                    if let Some(OnInsert::DuplicateKeyUpdate(assignments)) = &ins.on {
                        for a in assignments {
                            let AssignmentTarget::ColumnName(n) = &a.target else {
                                return None;
                            };
                            if idents(n).last()?.eq_ignore_ascii_case(key) {
                                return None;
                            }
                        }
                    }
                    Some(Outcome::Keys(values))
                }
                _ => None,
            }
        }

        fn from(&mut self, from: &[TableWithJoins]) -> Option<()> {
            for twj in from {
                self.factor(&twj.relation)?;
                for j in &twj.joins {
                    self.factor(&j.relation)?;
                    let (c, inner) = match &j.join_operator {
                        JoinOperator::Join(c)
                        | JoinOperator::Inner(c)
                        | JoinOperator::CrossJoin(c) => (c, true),
                        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => {
                            self.outer = true;
                            (c, false)
                        }
                        JoinOperator::Right(c) | JoinOperator::RightOuter(c) => {
                            self.right_join = true;
                            (c, false)
                        }
                        JoinOperator::StraightJoin(c) => (c, true),
                        _ => return None,
                    };
                    match c {
                        JoinConstraint::On(e) => self.condition(e, inner, true),
                        JoinConstraint::Using(cols) => {
                            let new = self.insts.len() - 1;
                            for col in cols {
                                let col = idents(col).last()?.to_ascii_lowercase();
                                let Some((k, ty)) = self.insts[new].key else {
                                    continue;
                                };
                                if k != col {
                                    continue;
                                }
                                let earlier: Vec<usize> = (0..new)
                                    .filter(|&i| self.insts[i].key == Some((k, ty)))
                                    .collect();
                                if let [i] = earlier[..] {
                                    self.eqs.push((i, new));
                                }
                            }
                        }
                        JoinConstraint::Natural | JoinConstraint::None => {}
                    }
                }
            }
            Some(())
        }

        fn factor(&mut self, f: &TableFactor) -> Option<()> {
            match f {
                TableFactor::Table { name, alias, .. } => {
                    let n = last(name);
                    self.insts.push(Inst {
                        key: sharded(&n),
                        name: n,
                        alias: alias.as_ref().map(|a| a.name.value.to_ascii_lowercase()),
                    });
                    Some(())
                }
                // Derived tables: sharded tables inside are caught by the
                // relation count.
                TableFactor::Derived { .. } => Some(()),
                // `a JOIN b JOIN c ON ...` nests: with an outer join about,
                // ON clauses then bind nothing (as under a RIGHT JOIN);
                // equalities still hold for the rows that meet.
                TableFactor::NestedJoin {
                    table_with_joins, ..
                } => {
                    self.nested = true;
                    self.from(std::slice::from_ref(&**table_with_joins))
                }
                _ => None,
            }
        }

        /// Every sharded relation of the statement is a top-level instance.
        fn all_top_level(&self, sharded_refs: usize) -> Option<()> {
            let top = self.insts.iter().filter(|i| i.key.is_some()).count();
            (top == sharded_refs).then_some(())
        }

        fn resolve(&self, parts: &[String]) -> Vec<usize> {
            let Some(col) = parts.last() else {
                return vec![];
            };
            let col = col.to_ascii_lowercase();
            (0..self.insts.len())
                .filter(|&i| {
                    let inst = &self.insts[i];
                    let Some((k, _)) = inst.key else { return false };
                    if k != col {
                        return false;
                    }
                    match parts.len() {
                        1 => true,
                        2 => {
                            let q = parts[0].to_ascii_lowercase();
                            match &inst.alias {
                                Some(a) => *a == q,
                                None => inst.name == q,
                            }
                        }
                        3 => inst.alias.is_none() && inst.name == parts[1].to_ascii_lowercase(),
                        _ => false,
                    }
                })
                .collect()
        }

        fn colref(&self, e: &Expr) -> Option<Vec<usize>> {
            let parts = match e {
                Expr::Identifier(i) => vec![i.value.clone()],
                Expr::CompoundIdentifier(v) => v.iter().map(|i| i.value.clone()).collect(),
                _ => return None,
            };
            let r = self.resolve(&parts);
            (!r.is_empty()).then_some(r)
        }

        /// A literal key value, rendered as `render` does.
        fn literal(&self, e: &Expr) -> Option<String> {
            match e {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => Some(format!("n:{n}")),
                    Value::SingleQuotedString(s)
                    | Value::DoubleQuotedString(s)
                    | Value::NationalStringLiteral(s) => Some(format!("s:{s}")),
                    Value::HexStringLiteral(h) => Some(hex_norm(h)),
                    Value::SingleQuotedByteStringLiteral(b) => {
                        let bits: String = b.chars().collect();
                        if !bits.chars().all(|c| c == '0' || c == '1') {
                            return None;
                        }
                        let n = bits.len().div_ceil(8).max(1);
                        let padded = format!("{bits:0>width$}", width = n * 8);
                        let bytes: Vec<u8> = (0..n)
                            .map(|i| u8::from_str_radix(&padded[i * 8..i * 8 + 8], 2).unwrap())
                            .collect();
                        Some(format!(
                            "hex:{}",
                            bytes.iter().map(|c| format!("{c:02x}")).collect::<String>()
                        ))
                    }
                    Value::Null => Some("null".into()),
                    Value::Placeholder(p) if p == "?" => {
                        // The generator puts `?` only where it is a
                        // placeholder: its index is the count before it.
                        let off = self.offset(v.span.start.line, v.span.start.column)?;
                        Some(format!("?{}", self.sql[..off].matches('?').count()))
                    }
                    _ => None,
                },
                Expr::UnaryOp { op, expr } => {
                    let sign = match op {
                        UnaryOperator::Minus => "-",
                        UnaryOperator::Plus => "+",
                        _ => return None,
                    };
                    match &**expr {
                        Expr::Value(v) => match &v.value {
                            Value::Number(n, _) => Some(format!("n:{sign}{n}")),
                            _ => None,
                        },
                        _ => None,
                    }
                }
                Expr::Prefixed { prefix, value } => {
                    let p = prefix.value.to_ascii_lowercase();
                    // ASCII-compatible charsets keep the bytes; latin1 and
                    // ascii only for ASCII values (the server converts the
                    // others to the column's charset).
                    let any_bytes =
                        ["_utf8mb4", "_utf8", "_binary", "_utf8mb3"].contains(&p.as_str());
                    if !any_bytes && !["_latin1", "_ascii"].contains(&p.as_str()) {
                        return None;
                    }
                    match &**value {
                        Expr::Value(v) => match &v.value {
                            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s)
                                if any_bytes || s.is_ascii() =>
                            {
                                Some(format!("s:{s}"))
                            }
                            _ => None,
                        },
                        _ => None,
                    }
                }
                _ => None,
            }
        }

        fn offset(&self, line: u64, column: u64) -> Option<usize> {
            let mut start = 0usize;
            for _ in 1..line {
                start += self.sql[start..].find('\n')? + 1;
            }
            Some(start + column as usize - 1)
        }

        /// The top-level conjunction of a condition: bindings (when `bind`)
        /// and key equalities.
        fn condition(&mut self, e: &Expr, bind: bool, on: bool) {
            let mut conjuncts = Vec::new();
            let mut stack = vec![e];
            while let Some(e) = stack.pop() {
                match e {
                    Expr::BinaryOp {
                        left,
                        op: BinaryOperator::And,
                        right,
                    } => {
                        stack.push(right);
                        stack.push(left);
                    }
                    Expr::Nested(inner) => stack.push(inner),
                    _ => conjuncts.push(e),
                }
            }
            for c in conjuncts {
                match c {
                    Expr::BinaryOp { left, op, right }
                        if matches!(op, BinaryOperator::Eq | BinaryOperator::Spaceship) =>
                    {
                        if let (Some(a), Some(b)) = (self.colref(left), self.colref(right)) {
                            if let ([a], [b]) = (&a[..], &b[..]) {
                                if self.insts[*a].key.map(|k| k.1)
                                    == self.insts[*b].key.map(|k| k.1)
                                {
                                    self.eqs.push((*a, *b));
                                }
                            }
                            continue;
                        }
                        let (col, lit) = match (self.colref(left), self.colref(right)) {
                            (Some(c), None) => (c, &**right),
                            (None, Some(c)) => (c, &**left),
                            _ => continue,
                        };
                        let Some(v) = self.literal(lit) else { continue };
                        if matches!(op, BinaryOperator::Spaceship) && v == "null" {
                            continue;
                        }
                        if bind {
                            self.bind(&col, [v], on);
                        }
                    }
                    Expr::InList {
                        expr,
                        list,
                        negated: false,
                    } => {
                        let Some(col) = self.colref(expr) else {
                            continue;
                        };
                        let vs: Option<Vec<String>> =
                            list.iter().map(|e| self.literal(e)).collect();
                        if let (Some(vs), true) = (vs, bind) {
                            self.bind(&col, vs, on);
                        }
                    }
                    _ => {}
                }
            }
        }

        fn bind(&mut self, insts: &[usize], vs: impl IntoIterator<Item = String>, on: bool) {
            let (values, bound) = if on {
                (&mut self.on_values, &mut self.on_bound)
            } else {
                (&mut self.values, &mut self.bound)
            };
            values.extend(vs);
            bound.extend_from_slice(insts);
        }

        fn verdict(&mut self) -> Option<Outcome> {
            let sharded: Vec<usize> = (0..self.insts.len())
                .filter(|&i| self.insts[i].key.is_some())
                .collect();
            let types: BTreeSet<_> = sharded
                .iter()
                .map(|&i| format!("{:?}", self.insts[i].key.unwrap().1))
                .collect();
            if types.len() > 1 {
                return None;
            }
            let mut bound: BTreeSet<usize> = self.bound.iter().copied().collect();
            let mut values = self.values.clone();
            if !(self.right_join || self.nested && self.outer) {
                bound.extend(self.on_bound.iter().copied());
                values.extend(self.on_values.iter().cloned());
            }
            // Close `bound` over the key equalities.
            loop {
                let before = bound.len();
                for &(a, b) in &self.eqs {
                    if bound.contains(&a) || bound.contains(&b) {
                        bound.insert(a);
                        bound.insert(b);
                    }
                }
                if bound.len() == before {
                    break;
                }
            }
            if sharded.iter().all(|i| bound.contains(i)) && !values.is_empty() {
                Some(Outcome::Keys(values))
            } else {
                None
            }
        }
    }

    fn idents(n: &ObjectName) -> Vec<String> {
        n.0.iter()
            .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
            .collect()
    }
}

/// Deterministic statement generator.
pub mod gen {
    use dbrouter::route::scanner::ScanOptions;

    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        pub fn next_u64(&mut self) -> u64 {
            // xorshift64*
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n.max(1)
        }
        pub fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
        pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
            &xs[self.below(xs.len() as u64) as usize]
        }
    }

    /// One statement being written twice: for the scanner and the oracle.
    pub struct Gen {
        pub rng: Rng,
        pub scan: String,
        pub oracle: String,
        pub opts: ScanOptions,
        /// No `?` may go into strings or comments (the oracle counts them).
        pub placeholders: u32,
        /// Several tables: key references are qualified.
        multi: bool,
    }

    struct Table {
        name: &'static str,
        key: Option<&'static str>,
        /// How the statement refers to it: alias or name.
        qual: String,
    }

    const TABLES: &[(&str, Option<&str>, u64)] = &[
        ("users", Some("userid"), 40),
        ("orders", Some("userid"), 20),
        ("events", Some("uid"), 8),
        ("accounts", Some("name"), 8),
        ("countries", None, 12),
        ("logs", None, 12),
    ];

    impl Gen {
        pub fn new(seed: u64) -> Gen {
            let mut rng = Rng::new(seed);
            let opts = ScanOptions {
                no_backslash_escapes: rng.chance(10),
                ansi_quotes: rng.chance(10),
                server_version: super::SERVER_VERSION,
            };
            Gen {
                rng,
                scan: String::new(),
                oracle: String::new(),
                opts,
                placeholders: 0,
                multi: false,
            }
        }

        /// Space between tokens: mostly one space, sometimes comments.
        fn sep(&mut self) {
            let r = self.rng.below(100);
            let s = match r {
                0..=79 => " ",
                80..=84 => "\n\t",
                85..=88 => " /* c */ ",
                89..=90 => " -- c\n",
                91..=92 => " # c\n",
                93..=94 => " /*!99999 OR 1=1 */ ",
                95 => " /*!50700 OR 1=1 */ ",
                96 => " /*M!999999 OR 1=1 */ ",
                _ => " ",
            };
            self.both(s, s_oracle(s));
        }

        fn both(&mut self, scan: &str, oracle: &str) {
            self.scan.push_str(scan);
            self.oracle.push_str(oracle);
        }

        /// A token, sometimes inside an executable comment.
        fn tok(&mut self, t: &str) {
            self.sep();
            if self.rng.chance(2) {
                let mut open = *self
                    .rng
                    .pick(&["/*!", "/*!50000 ", "/*M!100000 ", "/*!40101"]);
                if !open.ends_with(' ') && t.starts_with(|c: char| c.is_ascii_digit()) {
                    // Digits right after the version would extend it.
                    open = if open == "/*!" { "/*! " } else { "/*!40101 " };
                }
                let s = format!("{open}{t} */");
                self.both(&s, &format!(" {t} "));
            } else {
                self.both(t, t);
            }
        }

        /// A token sqlparser reads differently: it gives `&&` the
        /// precedence of PostgreSQL's overlap operator and `||` that of
        /// concatenation; MariaDB reads them as AND and OR.
        fn op(&mut self, t: &str) {
            let o = match t {
                "&&" => "AND",
                "||" => "OR",
                // sqlparser binds XOR tighter than AND (MariaDB: between
                // AND and OR); as far as routing goes XOR voids bindings
                // exactly as OR does.
                "XOR" => "OR",
                _ => t,
            };
            self.sep();
            self.both(t, o);
        }

        fn kw(&mut self, k: &str) {
            let k = if self.rng.chance(30) {
                k.to_ascii_lowercase()
            } else {
                k.to_string()
            };
            self.tok(&k);
        }

        /// An identifier in a random quoting style.
        fn ident(&mut self, name: &str) {
            let name = if self.rng.chance(10) {
                name.to_ascii_uppercase()
            } else {
                name.to_string()
            };
            self.sep();
            match self.rng.below(3) {
                0 => self.both(&name, &name),
                1 => self.both(&format!("`{name}`"), &format!("`{name}`")),
                _ if self.opts.ansi_quotes => {
                    self.both(&format!("\"{name}\""), &format!("`{name}`"))
                }
                _ => self.both(&name, &name),
            }
        }

        /// `a.b` with no space around the dot.
        fn qualified(&mut self, q: &str, col: &str) {
            self.ident(q);
            self.both(".", ".");
            let save = self.rng.below(3);
            match save {
                0 => self.both(col, col),
                _ => self.both(&format!("`{col}`"), &format!("`{col}`")),
            }
        }

        fn placeholder(&mut self) {
            self.placeholders += 1;
            self.tok("?");
        }

        /// A literal key value.
        fn literal(&mut self, string_key: bool) {
            let r = self.rng.below(100);
            let backslash = !self.opts.no_backslash_escapes;
            let dq = !self.opts.ansi_quotes;
            if string_key {
                match r {
                    0..=49 => {
                        let v = *self.rng.pick(&["Acme", "acme", "b", "x y", "Zed"]);
                        self.tok(&format!("'{v}'"));
                    }
                    50..=59 => self.tok("'it''s'"),
                    60..=64 if backslash => self.tok(r"'a\'b'"),
                    65..=69 if backslash => self.tok(r"'tab\there'"),
                    70..=74 => self.tok("_utf8mb4'Acme'"),
                    75..=79 => self.tok("N'Acme'"),
                    80..=84 if dq => self.tok("\"Acme\""),
                    85..=89 => {
                        self.tok("'Ac'");
                        self.tok("'me'");
                    }
                    _ => self.placeholder(),
                }
                return;
            }
            match r {
                0..=49 => {
                    let n = self.rng.below(100_000).to_string();
                    self.tok(&n);
                }
                50..=54 => {
                    let n = format!("-{}", self.rng.below(1000));
                    self.tok(&n);
                }
                55..=64 => {
                    let n = format!("'{}'", self.rng.below(1000));
                    self.tok(&n);
                }
                65..=67 => self.tok("x'2A'"),
                68..=69 => self.tok("0x2A"),
                70..=71 => self.tok("b'101010'"),
                72..=74 => self.tok("4.2e1"),
                75..=76 => self.tok("NULL"),
                77..=78 if dq => self.tok("\"42\""),
                _ => self.placeholder(),
            }
        }

        fn literal_list(&mut self, string_key: bool) {
            self.tok("(");
            let n = 1 + self.rng.below(4);
            for i in 0..n {
                if i > 0 {
                    self.tok(",");
                }
                self.literal(string_key);
            }
            self.tok(")");
        }

        fn keyref(&mut self, t: &Table) {
            let key = t.key.unwrap_or("id");
            // Unqualified only with one table: otherwise the server may find
            // it ambiguous.
            match self.rng.below(3) {
                0 if !self.multi => self.ident(key),
                _ => {
                    let q = t.qual.clone();
                    self.qualified(&q, key)
                }
            }
        }

        fn colref(&mut self, t: &Table, col: &str) {
            if self.rng.chance(50) {
                let q = t.qual.clone();
                self.qualified(&q, col);
            } else {
                self.ident(col);
            }
        }

        /// One conjunct-level atom.
        fn atom(&mut self, ts: &[Table]) {
            let t = &ts[self.rng.below(ts.len() as u64) as usize];
            let string_key = t.name == "accounts";
            let r = self.rng.below(100);
            match r {
                // Bindings.
                0..=34 => {
                    self.keyref(t);
                    self.tok("=");
                    self.literal(string_key);
                }
                35..=39 => {
                    self.literal(string_key);
                    self.tok("=");
                    self.keyref(t);
                }
                40..=49 => {
                    self.keyref(t);
                    self.kw("IN");
                    self.literal_list(string_key);
                }
                50..=52 => {
                    self.keyref(t);
                    self.tok("<=>");
                    self.literal(string_key);
                }
                // Not bindings.
                53..=56 => {
                    self.keyref(t);
                    let op = *self.rng.pick(&["!=", "<", ">=", "<>"]);
                    self.tok(op);
                    self.literal(string_key);
                }
                57..=58 => {
                    self.keyref(t);
                    self.tok("=");
                    self.literal(string_key);
                    self.tok("+");
                    self.tok("1");
                }
                59..=60 => {
                    // The `--1` trap: minus minus one, not a comment.
                    self.keyref(t);
                    self.tok("=");
                    self.tok("42");
                    self.both(" --1", " --1");
                }
                61..=62 => {
                    self.keyref(t);
                    self.tok("=");
                    self.colref(t, "other_id");
                }
                63..=64 => {
                    self.keyref(t);
                    self.kw("BETWEEN");
                    self.tok("1");
                    self.kw("AND");
                    self.tok("9");
                }
                65..=66 => {
                    self.keyref(t);
                    self.kw("NOT");
                    self.kw("IN");
                    self.literal_list(string_key);
                }
                67..=68 => {
                    self.kw("NOT");
                    self.keyref(t);
                    self.tok("=");
                    self.literal(string_key);
                }
                69..=70 => {
                    self.keyref(t);
                    self.kw("IS");
                    self.kw("NULL");
                }
                71..=72 => {
                    self.keyref(t);
                    self.kw("IN");
                    self.tok("(");
                    self.kw("SELECT");
                    self.ident("userid");
                    self.kw("FROM");
                    let sub = *self.rng.pick(&["orders", "countries", "logs"]);
                    self.ident(sub);
                    self.tok(")");
                }
                73..=74 => {
                    self.kw("EXISTS");
                    self.tok("(");
                    self.kw("SELECT");
                    self.tok("1");
                    self.kw("FROM");
                    let sub = *self.rng.pick(&["orders", "countries"]);
                    self.ident(sub);
                    self.kw("WHERE");
                    self.ident("userid");
                    self.tok("=");
                    self.tok("5");
                    self.tok(")");
                }
                75..=76 => {
                    self.kw("CASE");
                    self.kw("WHEN");
                    self.colref(t, "a");
                    self.kw("AND");
                    self.keyref(t);
                    self.tok("=");
                    self.literal(string_key);
                    self.kw("THEN");
                    self.tok("1");
                    self.kw("ELSE");
                    self.tok("0");
                    self.kw("END");
                }
                77..=80 if ts.len() > 1 => {
                    // A key equality between two tables.
                    let u = &ts[self.rng.below(ts.len() as u64) as usize];
                    self.keyref(t);
                    self.tok("=");
                    self.keyref(u);
                }
                _ => {
                    let col = *self.rng.pick(&["status", "a", "created_at", "other_id"]);
                    self.colref(t, col);
                    let op = *self.rng.pick(&["=", ">", "<", "LIKE"]);
                    self.tok(op);
                    let v = *self.rng.pick(&["1", "'x'", "'%y%'", "NOW()"]);
                    self.tok(v);
                }
            }
        }

        /// A condition: mostly AND chains, sometimes OR/XOR/NOT/parentheses.
        fn cond(&mut self, ts: &[Table], depth: u32) {
            let r = self.rng.below(100);
            if depth >= 3 || r < 45 {
                return self.atom(ts);
            }
            match r {
                45..=79 => {
                    let n = 2 + self.rng.below(3);
                    for i in 0..n {
                        if i > 0 {
                            let and = *self.rng.pick(&["AND", "AND", "and", "&&"]);
                            self.op(and);
                        }
                        self.cond(ts, depth + 1);
                    }
                }
                80..=87 => {
                    self.cond(ts, depth + 1);
                    let or = *self.rng.pick(&["OR", "or", "||", "XOR"]);
                    self.op(or);
                    self.cond(ts, depth + 1);
                }
                88..=91 => {
                    self.kw("NOT");
                    self.tok("(");
                    self.cond(ts, depth + 1);
                    self.tok(")");
                }
                _ => {
                    self.tok("(");
                    self.cond(ts, depth + 1);
                    self.tok(")");
                }
            }
        }

        fn table_choice(&mut self) -> (&'static str, Option<&'static str>) {
            let total: u64 = TABLES.iter().map(|t| t.2).sum();
            let mut r = self.rng.below(total);
            for &(n, k, w) in TABLES {
                if r < w {
                    return (n, k);
                }
                r -= w;
            }
            ("users", Some("userid"))
        }

        fn table_factor(&mut self, i: usize) -> Table {
            let (name, key) = self.table_choice();
            if self.rng.chance(10) {
                self.qualified("app", name);
            } else {
                self.ident(name);
            }
            let qual = match self.rng.below(3) {
                // Later tables always get an alias: no duplicate names.
                0 if i == 0 => name.to_string(),
                1 => {
                    let a = format!("t{i}");
                    self.ident(&a);
                    a
                }
                _ => {
                    let a = format!("t{i}");
                    self.kw("AS");
                    self.ident(&a);
                    a
                }
            };
            Table { name, key, qual }
        }

        /// FROM list: 1 to 3 tables, comma or JOIN.
        fn tables(&mut self) -> Vec<Table> {
            let mut ts = vec![self.table_factor(0)];
            let n = if self.rng.chance(70) {
                1
            } else {
                2 + self.rng.below(2)
            };
            self.multi = n > 1;
            for i in 1..n as usize {
                let j = self.rng.below(6);
                if j == 0 {
                    self.tok(",");
                    let t = self.table_factor(i);
                    ts.push(t);
                    continue;
                }
                let join = [
                    "JOIN",
                    "INNER JOIN",
                    "LEFT JOIN",
                    "RIGHT JOIN",
                    "CROSS JOIN",
                    "LEFT OUTER JOIN",
                ][j as usize % 6];
                for w in join.split(' ') {
                    self.kw(w);
                }
                let t = self.table_factor(i);
                ts.push(t);
                // Outer joins need their ON (or the server says syntax error).
                if join.contains("LEFT") || join.contains("RIGHT") || self.rng.chance(85) {
                    self.kw("ON");
                    let (a, b) = (&ts[i], &ts[self.rng.below(i as u64) as usize]);
                    let (a, b) = (
                        Table {
                            name: a.name,
                            key: a.key,
                            qual: a.qual.clone(),
                        },
                        Table {
                            name: b.name,
                            key: b.key,
                            qual: b.qual.clone(),
                        },
                    );
                    if self.rng.chance(80) {
                        self.keyref(&a);
                        self.tok("=");
                        self.keyref(&b);
                    } else {
                        self.atom(&[a, b]);
                    }
                    if self.rng.chance(30) {
                        self.kw("AND");
                        let all: Vec<Table> = ts
                            .iter()
                            .map(|t| Table {
                                name: t.name,
                                key: t.key,
                                qual: t.qual.clone(),
                            })
                            .collect();
                        self.cond(&all, 2);
                    }
                }
            }
            ts
        }

        fn select(&mut self) {
            self.kw("SELECT");
            match self.rng.below(4) {
                0 => self.tok("*"),
                1 => {
                    self.ident("a");
                    self.tok(",");
                    self.ident("b");
                }
                2 => self.tok("COUNT(*)"),
                _ => {
                    self.tok("(");
                    self.kw("SELECT");
                    self.tok("1");
                    self.tok(")");
                }
            }
            self.kw("FROM");
            let ts = self.tables();
            if self.rng.chance(90) {
                self.kw("WHERE");
                self.cond(&ts, 0);
            }
            match self.rng.below(8) {
                0 => {
                    self.kw("ORDER");
                    self.kw("BY");
                    self.ident("a");
                }
                1 => {
                    self.kw("LIMIT");
                    self.tok("10");
                }
                2 => {
                    self.kw("FOR");
                    self.kw("UPDATE");
                }
                3 if self.rng.chance(30) => {
                    self.kw("UNION");
                    self.kw("SELECT");
                    self.tok("*");
                    self.kw("FROM");
                    let t = *self.rng.pick(&["users", "countries"]);
                    self.ident(t);
                }
                _ => {}
            }
        }

        fn insert(&mut self) {
            let w = if self.rng.chance(85) {
                "INSERT"
            } else {
                "REPLACE"
            };
            self.kw(w);
            if self.rng.chance(10) {
                self.kw("IGNORE");
            }
            if self.rng.chance(80) {
                self.kw("INTO");
            }
            let (name, key) = self.table_choice();
            self.ident(name);
            let key = key.unwrap_or("id");
            let string_key = name == "accounts";
            let mut cols: Vec<&str> = vec!["a", "b", "created_at"];
            if self.rng.chance(90) {
                let at = self.rng.below(cols.len() as u64 + 1) as usize;
                cols.insert(at, key);
            }
            let form = self.rng.below(100);
            if form < 8 {
                // INSERT ... SET
                self.kw("SET");
                for (i, c) in cols.iter().enumerate() {
                    if i > 0 {
                        self.tok(",");
                    }
                    self.ident(c);
                    self.tok("=");
                    if *c == key {
                        self.literal(string_key);
                    } else {
                        self.tok("'v'");
                    }
                }
                return;
            }
            if form < 12 {
                // No column list.
                self.kw("VALUES");
                self.tok("(");
                self.literal(string_key);
                self.tok(")");
                return;
            }
            self.tok("(");
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    self.tok(",");
                }
                self.ident(c);
            }
            self.tok(")");
            if form < 16 {
                self.kw("SELECT");
                self.tok("*");
                self.kw("FROM");
                self.ident("logs");
                return;
            }
            let w = if self.rng.chance(90) {
                "VALUES"
            } else {
                "VALUE"
            };
            self.kw(w);
            let max = if self.rng.chance(10) { 40 } else { 4 };
            let rows = 1 + self.rng.below(max);
            for r in 0..rows {
                if r > 0 {
                    self.tok(",");
                }
                self.tok("(");
                for (i, c) in cols.iter().enumerate() {
                    if i > 0 {
                        self.tok(",");
                    }
                    if *c == key {
                        match self.rng.below(100) {
                            0..=2 => self.tok("1+1"),
                            3 => self.tok("DEFAULT"),
                            4 => self.tok("NULL"),
                            _ => self.literal(string_key),
                        }
                    } else {
                        let v = *self.rng.pick(&[
                            "1",
                            "'x'",
                            "NOW()",
                            "CONCAT('a', 'b')",
                            "NULL",
                            "-3.5",
                        ]);
                        self.tok(v);
                    }
                }
                self.tok(")");
            }
            if self.rng.chance(15) {
                self.kw("ON");
                self.kw("DUPLICATE");
                self.kw("KEY");
                self.kw("UPDATE");
                let c = if self.rng.chance(20) { key } else { "a" };
                self.ident(c);
                self.tok("=");
                self.kw("VALUES");
                self.tok("(");
                self.ident(c);
                self.tok(")");
            }
        }

        fn update(&mut self) {
            self.kw("UPDATE");
            let ts = self.tables();
            self.kw("SET");
            let n = 1 + self.rng.below(3);
            for i in 0..n {
                if i > 0 {
                    self.tok(",");
                }
                let t = &ts[self.rng.below(ts.len() as u64) as usize];
                let t = Table {
                    name: t.name,
                    key: t.key,
                    qual: t.qual.clone(),
                };
                if self.rng.chance(8) {
                    self.keyref(&t);
                } else {
                    self.colref(&t, "a");
                }
                self.tok("=");
                let v = *self.rng.pick(&["1", "'x'", "a + 1", "NOW()"]);
                self.tok(v);
            }
            if self.rng.chance(92) {
                self.kw("WHERE");
                self.cond(&ts, 0);
            }
            if self.rng.chance(10) && ts.len() == 1 {
                self.kw("LIMIT");
                self.tok("1");
            }
        }

        fn delete(&mut self) {
            self.kw("DELETE");
            if self.rng.chance(80) {
                self.kw("FROM");
                let (name, key) = self.table_choice();
                self.ident(name);
                let ts = vec![Table {
                    name,
                    key,
                    qual: name.to_string(),
                }];
                if self.rng.chance(92) {
                    self.kw("WHERE");
                    self.cond(&ts, 0);
                }
            } else {
                self.multi = true;
                self.ident("t0");
                self.kw("FROM");
                // Multi-table form: the first table is aliased t0.
                let (name, key) = self.table_choice();
                self.ident(name);
                self.ident("t0");
                let mut ts = vec![Table {
                    name,
                    key,
                    qual: "t0".into(),
                }];
                self.kw("JOIN");
                let (n2, k2) = self.table_choice();
                self.ident(n2);
                self.ident("t1");
                ts.push(Table {
                    name: n2,
                    key: k2,
                    qual: "t1".into(),
                });
                self.kw("ON");
                let (a, b) = (
                    Table {
                        name,
                        key,
                        qual: "t0".into(),
                    },
                    Table {
                        name: n2,
                        key: k2,
                        qual: "t1".into(),
                    },
                );
                self.keyref(&a);
                self.tok("=");
                self.keyref(&b);
                self.kw("WHERE");
                self.cond(&ts, 0);
            }
        }

        fn other(&mut self) {
            let s = *self.rng.pick(&[
                "SET autocommit = 1",
                "SET NAMES utf8mb4",
                "BEGIN",
                "COMMIT",
                "SHOW TABLES",
                "SELECT 1",
                "SELECT * FROM countries WHERE id = 5",
                "SELECT * FROM logs l JOIN countries c ON c.id = l.cid",
                "TRUNCATE users",
                "SELECT * FROM information_schema.tables",
                "DELETE FROM logs WHERE id = 3",
            ]);
            for w in s.split(' ') {
                self.tok(w);
            }
        }

        /// A whole statement.
        pub fn statement(&mut self) {
            let r = self.rng.below(100);
            match r {
                0..=44 => self.select(),
                45..=69 => self.insert(),
                70..=82 => self.update(),
                83..=94 => self.delete(),
                _ => self.other(),
            }
            if self.rng.chance(3) {
                self.both(";", ";");
            }
        }
    }

    /// How sqlparser should read a separator: versioned comments the server
    /// skips become a space.
    fn s_oracle(s: &str) -> &str {
        if s.contains("/*!") || s.contains("/*M!") {
            " "
        } else {
            s
        }
    }
}

#[derive(Default, Debug)]
struct Counts {
    total: u64,
    unparsable: u64,
    agree: u64,
    agree_keys: u64,
    refused: u64,
    refused_routable: u64,
    disagree: u64,
}

fn run(n: u64, seed: u64) -> Counts {
    run_range(0..n, seed)
}

fn run_range(range: std::ops::Range<u64>, seed: u64) -> Counts {
    let schema = schema();
    let mut c = Counts::default();
    let mut shown = 0;
    for i in range {
        let mut g = gen::Gen::new(seed ^ i.wrapping_mul(0x100_0000_01B3));
        g.statement();
        c.total += 1;
        let scanned = scanner_outcome(g.scan.as_bytes(), &schema, &g.opts);
        let Some(expected) = oracle::outcome(&g.oracle) else {
            c.unparsable += 1;
            continue;
        };
        match (&scanned, &expected) {
            (Outcome::Refused, Outcome::Refused) => c.refused += 1,
            (Outcome::Refused, _) => {
                c.refused += 1;
                c.refused_routable += 1;
            }
            (s, e) if s == e => {
                c.agree += 1;
                if matches!(s, Outcome::Keys(_)) {
                    c.agree_keys += 1;
                }
            }
            _ => {
                c.disagree += 1;
                if shown < 20 {
                    shown += 1;
                    eprintln!(
                        "DISAGREEMENT #{i} ({:?})\n  scanner text: {}\n  oracle text:  {}\n  scanner: {scanned:?}\n  oracle:  {expected:?}",
                        g.opts, g.scan, g.oracle
                    );
                }
            }
        }
    }
    c
}

#[test]
fn scanner_agrees_with_the_oracle_or_refuses() {
    let n = std::env::var("SCANNER_DIFF_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seed = std::env::var("SCANNER_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_DB20);
    let c = match std::env::var("SCANNER_DIFF_ONLY")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        // Replays one statement by its number.
        Some(i) => run_range(i..i + 1, seed),
        None => run(n, seed),
    };
    let parseable = c.total - c.unparsable;
    println!(
        "scanner differential: total {} | oracle-unparsable {} | agree {} (routed by key {}) | refused {} (of which the oracle could route {}) | disagree {}",
        c.total, c.unparsable, c.agree, c.agree_keys, c.refused, c.refused_routable, c.disagree
    );
    assert_eq!(
        c.disagree, 0,
        "the scanner routed differently from the oracle"
    );
    assert!(
        c.agree * 2 > parseable,
        "agreement too low: {} of {parseable} parseable statements",
        c.agree
    );
    assert!(
        c.agree_keys * 4 > parseable,
        "too few statements routed by key: {} of {parseable}",
        c.agree_keys
    );
}

/// The scanner's fast paths (the point select, plain VALUES rows) answer
/// every generated statement exactly as the token-by-token parser does
/// (`SCANNER_DIFF_N` statements, as above, but without the oracle).
#[test]
fn fast_paths_agree_with_the_reference_parser() {
    let n: u64 = std::env::var("SCANNER_DIFF_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seed = std::env::var("SCANNER_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_DB20_u64);
    let schema = schema();
    let mut point_selects = 0u64;
    for i in 0..n {
        let mut g = gen::Gen::new(seed ^ i.wrapping_mul(0x100_0000_01B3));
        g.statement();
        let sql = g.scan.as_bytes();
        let reference = analyze_reference(sql, &schema, &g.opts);
        assert_eq!(
            analyze(sql, &schema, &g.opts),
            reference,
            "#{i} ({:?}): {}",
            g.opts,
            g.scan
        );
        let fast = analyze_point_select(sql, &schema);
        if let Some(fast) = fast {
            point_selects += 1;
            assert_eq!(Ok(fast), reference, "#{i} ({:?}): {}", g.opts, g.scan);
        }
    }
    println!("fast paths: {point_selects} of {n} statements took the point-select path");
}
