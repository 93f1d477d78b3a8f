//! The scanner's rules, one by one. `tests/routing_golden.rs` holds the
//! tables of real statements; `tests/scanner_differential.rs` the oracle.

use super::*;
use crate::route::schema::MissingKey;
use RefusalReason::*;

/// Also the fast path's tests' schema (`fast.rs`).
pub(super) fn schema() -> Schema {
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

const OPTS: ScanOptions = ScanOptions::new(101119);

/// The key values as short strings: `42` numbers, `'x'` strings, `x'2a'`
/// binary, `?0` placeholders, `NULL`; `unsharded`; or the refusal reason.
fn scan_with(sql: &str, opts: &ScanOptions) -> Result<Vec<String>, RefusalReason> {
    let s = schema();
    let out = match analyze(sql.as_bytes(), &s, opts) {
        Ok(a) => match a.target {
            Target::Unsharded => Ok(vec!["unsharded".into()]),
            Target::Keys { values, .. } => Ok(values.iter().map(show).collect()),
        },
        Err(r) => Err(r.reason),
    };
    out
}

fn show(v: &KeyValue<'_>) -> String {
    match v {
        KeyValue::Number(n) => String::from_utf8_lossy(n).into_owned(),
        KeyValue::Str(s) => format!("'{}'", String::from_utf8_lossy(s)),
        KeyValue::Binary(b) => format!(
            "x'{}'",
            b.iter().map(|c| format!("{c:02x}")).collect::<String>()
        ),
        KeyValue::Placeholder(i) => format!("?{i}"),
        KeyValue::Null => "NULL".into(),
        KeyValue::Int(i) => i.to_string(),
        KeyValue::UInt(i) => i.to_string(),
    }
}

fn scan(sql: &str) -> Result<Vec<String>, RefusalReason> {
    scan_with(sql, &OPTS)
}

fn keys(sql: &str, expected: &[&str]) {
    assert_eq!(
        scan(sql),
        Ok(expected.iter().map(|s| s.to_string()).collect()),
        "{sql}"
    );
}

fn unsharded(sql: &str) {
    keys(sql, &["unsharded"]);
}

fn refused(sql: &str, reason: RefusalReason) {
    assert_eq!(scan(sql), Err(reason), "{sql}");
}

#[test]
fn point_selects() {
    keys("SELECT * FROM users WHERE userid = 42", &["42"]);
    keys("select * from users where 42 = userid", &["42"]);
    keys("SELECT * FROM users WHERE userid <=> 42", &["42"]);
    keys(
        "SELECT * FROM `users` WHERE `users`.`userid` = 42 LIMIT 1",
        &["42"],
    );
    keys("SELECT u.name FROM users u WHERE u.userid = -7", &["-7"]);
    keys(
        "SELECT u.name FROM db.users AS u WHERE u.userid = 7",
        &["7"],
    );
}

#[test]
fn qualified_names() {
    keys("SELECT u.name FROM users AS u WHERE u.userid = 7", &["7"]);
    keys("SELECT * FROM app.users WHERE app.users.userid = 7", &["7"]);
    keys("SELECT * FROM app.users WHERE users.userid = 7", &["7"]);
    // A qualifier naming another table binds nothing.
    refused("SELECT * FROM users u WHERE x.userid = 7", NoKey);
    // With an alias, the table name no longer qualifies (server: error).
    refused("SELECT * FROM users u WHERE users.userid = 7", NoKey);
}

#[test]
fn literal_forms() {
    keys("SELECT * FROM users WHERE userid = '42'", &["'42'"]);
    keys("SELECT * FROM users WHERE userid = \"42\"", &["'42'"]);
    keys("SELECT * FROM users WHERE userid = x'2A'", &["x'2a'"]);
    keys("SELECT * FROM users WHERE userid = X'002A'", &["x'002a'"]);
    keys("SELECT * FROM users WHERE userid = b'101010'", &["x'2a'"]);
    keys("SELECT * FROM users WHERE userid = 0x2A", &["0x2A"]);
    keys("SELECT * FROM users WHERE userid = 0b101", &["0b101"]);
    keys("SELECT * FROM users WHERE userid = 4.2e1", &["4.2e1"]);
    keys("SELECT * FROM users WHERE userid = +042", &["+042"]);
    keys("SELECT * FROM users WHERE userid = .5", &[".5"]);
    keys("SELECT * FROM users WHERE userid = ?", &["?0"]);
    keys("SELECT * FROM users WHERE userid = NULL", &["NULL"]);
    keys("SELECT * FROM accounts WHERE name = 'ab' 'c'", &["'abc'"]);
    keys(
        "SELECT * FROM accounts WHERE name = _utf8mb4'Acme'",
        &["'Acme'"],
    );
    keys(
        "SELECT * FROM accounts WHERE name = _binary 'Acme'",
        &["'Acme'"],
    );
    keys("SELECT * FROM accounts WHERE name = N'Acme'", &["'Acme'"]);
    keys(
        r"SELECT * FROM accounts WHERE name = 'it''s \'x\' \n'",
        &["'it's 'x' \n'"],
    );
    // `<=> NULL` matches NULL keys: not a binding.
    refused("SELECT * FROM users WHERE userid <=> NULL", NoKey);
    // latin1 bytes above 127 would be converted by the server.
    refused(
        "SELECT * FROM accounts WHERE name = _latin1'\u{e9}'",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid = x'2'",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid = - 5",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid = --5",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid = TRUE",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM accounts WHERE name = 'a' COLLATE utf8mb4_bin",
        KeyComparedWithExpression,
    );
}

#[test]
fn escapes_follow_sql_mode() {
    let nbe = ScanOptions {
        no_backslash_escapes: true,
        ..OPTS
    };
    assert_eq!(
        scan_with(r"SELECT * FROM accounts WHERE name = 'a\'", &nbe),
        Ok(vec![r"'a\'".to_string()])
    );
    // With escapes on, the same text is an unterminated string.
    refused(r"SELECT * FROM accounts WHERE name = 'a\'", NotUnderstood);
    // `\'` hides the quote: the OR is inside the string.
    keys(
        r"SELECT * FROM accounts WHERE name = 'x\' OR 1=1 -- '",
        &["'x' OR 1=1 -- '"],
    );
    // ...and without escapes the OR is code.
    assert_eq!(
        scan_with(
            r"SELECT * FROM accounts WHERE name = 'x\' OR 1=1 -- '",
            &nbe
        ),
        Err(TopLevelOr)
    );
    let ansi = ScanOptions {
        ansi_quotes: true,
        ..OPTS
    };
    assert_eq!(
        scan_with(r#"SELECT * FROM "users" WHERE "userid" = 42"#, &ansi),
        Ok(vec!["42".to_string()])
    );
    assert_eq!(
        scan_with(r#"SELECT * FROM users WHERE userid = "42""#, &ansi),
        Err(KeyComparedWithExpression)
    );
}

#[test]
fn comments_and_executable_comments() {
    keys("SELECT * FROM users WHERE userid = 42 -- 1", &["42"]);
    keys("SELECT * FROM users WHERE userid = 42 #1", &["42"]);
    keys("SELECT * FROM users WHERE userid = 42 /* OR 1 */", &["42"]);
    // `--1` is not a comment: 42 - -1 = 43.
    refused(
        "SELECT * FROM users WHERE userid = 42 --1",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid = 42 /*! +1 */",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid = 42 /*!50000 OR 1 */",
        TopLevelOr,
    );
    refused(
        "SELECT * FROM users WHERE userid = 42 /*M!100000 OR 1 */",
        TopLevelOr,
    );
    keys(
        "SELECT * FROM users WHERE userid = 42 /*!99999 OR 1 */",
        &["42"],
    );
    keys(
        "SELECT * FROM users WHERE userid = 42 /*!50700 OR 1 */",
        &["42"],
    );
    keys(
        "SELECT * FROM users WHERE userid = 42 /*M!999999 OR 1 */",
        &["42"],
    );
    keys("/*!40101 SELECT */ * FROM users WHERE userid = 42", &["42"]);
    keys("SELECT * FROM users WHERE /*!userid = 42*/", &["42"]);
    // An executable comment can name the table too.
    refused("SELECT * FROM countries /*!, users */", NoKey);
    refused(
        "SELECT * FROM users WHERE userid = 42 /* open",
        NotUnderstood,
    );
}

#[test]
fn conjunctions() {
    keys(
        "SELECT * FROM users WHERE a = 1 AND userid = 5 AND b > 2",
        &["5"],
    );
    keys("SELECT * FROM users WHERE a = 1 && userid = 5", &["5"]);
    keys("SELECT * FROM users WHERE (userid = 5)", &["5"]);
    keys(
        "SELECT * FROM users WHERE ((a = 1 AND (userid = 5)))",
        &["5"],
    );
    keys(
        "SELECT * FROM users WHERE userid = 5 AND (a = 1 OR b = 2)",
        &["5"],
    );
    keys(
        "SELECT * FROM users WHERE userid = 1 AND userid = 2",
        &["1", "2"],
    );
    keys(
        "SELECT * FROM users WHERE x BETWEEN 1 AND 2 AND userid = 3",
        &["3"],
    );
    keys("SELECT * FROM users WHERE NOT a = 1 AND userid = 3", &["3"]);
    keys(
        "SELECT * FROM users WHERE userid IN (1, '2', ?)",
        &["1", "'2'", "?0"],
    );
    keys(
        "SELECT * FROM users WHERE userid = 3 ORDER BY a AND userid = 4",
        &["3"],
    );
    keys("SELECT * FROM users WHERE userid = 3 FOR UPDATE", &["3"]);
    keys(
        "SELECT * FROM users WHERE userid = 3 LOCK IN SHARE MODE",
        &["3"],
    );
    keys(
        "SELECT a, COUNT(*) FROM users WHERE userid = 3 GROUP BY a HAVING COUNT(*) > 1",
        &["3"],
    );
}

#[test]
fn disjunctions_and_negations() {
    refused("SELECT * FROM users WHERE userid = 5 OR 1=1", TopLevelOr);
    refused("SELECT * FROM users WHERE userid = 5 || 1=1", TopLevelOr);
    refused("SELECT * FROM users WHERE userid = 5 XOR 1", TopLevelOr);
    refused(
        "SELECT * FROM users WHERE a = 1 AND userid = 5 OR b = 2",
        TopLevelOr,
    );
    refused(
        "SELECT * FROM users WHERE (userid = 5 OR userid = 6)",
        TopLevelOr,
    );
    refused(
        "SELECT * FROM users WHERE x = 1 AND (userid = 5 OR y = 2)",
        TopLevelOr,
    );
    refused("SELECT * FROM users WHERE NOT userid = 5", NoKey);
    refused("SELECT * FROM users WHERE NOT (userid = 5)", NoKey);
    refused("SELECT * FROM users WHERE !(userid = 5)", NoKey);
    refused("SELECT * FROM users WHERE userid != 5", NoKey);
    refused("SELECT * FROM users WHERE userid < 5", NoKey);
    refused("SELECT * FROM users WHERE userid NOT IN (5)", NoKey);
    refused("SELECT * FROM users WHERE userid BETWEEN 5 AND 6", NoKey);
    refused("SELECT * FROM users WHERE userid LIKE '5'", NoKey);
    refused(
        "SELECT * FROM users WHERE userid = 5 IS FALSE",
        KeyComparedWithExpression,
    );
    refused("SELECT * FROM users WHERE (userid = 5) IS FALSE", NoKey);
    refused(
        "SELECT * FROM users WHERE x BETWEEN 1 AND userid = 5",
        NoKey,
    );
    refused(
        "SELECT * FROM users WHERE CASE WHEN a AND userid = 5 THEN 1 END",
        NoKey,
    );
    refused(
        "SELECT * FROM users WHERE CASE WHEN t.end AND userid = 5 THEN 1 END",
        NoKey,
    );
    refused("SELECT * FROM users", NoKey);
}

#[test]
fn expressions() {
    refused(
        "SELECT * FROM users WHERE userid = 1+1",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid = id2",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid = abs(5)",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid = (5)",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid IN (1, 1+1)",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid IN (1) IS TRUE",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid = @x",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid = (SELECT 5)",
        KeyComparedWithExpression,
    );
    refused(
        "SELECT * FROM users WHERE userid IN (SELECT userid FROM orders)",
        KeyOnlyInSubquery,
    );
}

#[test]
fn subqueries_and_strays() {
    refused(
        "SELECT * FROM countries WHERE id IN (SELECT c FROM users WHERE userid = 5)",
        KeyOnlyInSubquery,
    );
    refused(
        "SELECT * FROM (SELECT * FROM users WHERE userid = 5) t",
        KeyOnlyInSubquery,
    );
    refused(
        "SELECT (SELECT name FROM users WHERE userid = 5)",
        KeyOnlyInSubquery,
    );
    refused(
        "SELECT * FROM users WHERE userid = 5 AND EXISTS (SELECT 1 FROM orders o WHERE o.userid = 5)",
        KeyOnlyInSubquery,
    );
    refused(
        "SELECT * FROM users WHERE userid = 5 UNION SELECT * FROM countries",
        NotUnderstood,
    );
    refused(
        "SELECT 1 UNION SELECT * FROM users WHERE userid = 5",
        NotUnderstood,
    );
    refused(
        "WITH x AS (SELECT * FROM users WHERE userid = 5) SELECT * FROM x",
        NotUnderstood,
    );
    refused("(SELECT * FROM users WHERE userid = 5)", NotUnderstood);
    refused("SELECT users FROM countries", NotUnderstood);
    // An alias spelled like a sharded table is refused rather than trusted.
    refused(
        "SELECT * FROM countries users WHERE users.userid = 5",
        NotUnderstood,
    );
    // Derived tables of unsharded tables are fine, and flagged.
    let s = schema();
    let a = analyze(
        b"SELECT * FROM users u JOIN (SELECT 1 AS x) d WHERE u.userid = 5",
        &s,
        &OPTS,
    )
    .unwrap();
    assert!(a.unsharded_tables);
    unsharded("SELECT * FROM countries WHERE id IN (SELECT id FROM countries)");
}

#[test]
fn joins() {
    keys(
        "SELECT * FROM users u JOIN orders o ON o.userid = u.userid WHERE u.userid = 5",
        &["5"],
    );
    keys(
        "SELECT * FROM users u, orders o WHERE u.userid = o.userid AND o.userid = 5",
        &["5"],
    );
    keys(
        "SELECT * FROM users u INNER JOIN orders o ON u.userid = o.userid AND u.userid = 5",
        &["5"],
    );
    keys(
        "SELECT * FROM users u LEFT JOIN orders o ON o.userid = u.userid WHERE u.userid = 5",
        &["5"],
    );
    keys(
        "SELECT * FROM users JOIN orders USING (userid) WHERE users.userid = 5",
        &["5"],
    );
    // Each bound on its own: all rows lie on the shards of the values.
    keys(
        "SELECT * FROM users u, orders o WHERE u.userid = 5 AND o.userid = 6",
        &["5", "6"],
    );
    refused(
        "SELECT * FROM users u JOIN orders o ON o.x = u.x WHERE u.userid = 5",
        MixedTables,
    );
    refused(
        "SELECT * FROM users u LEFT JOIN orders o ON o.userid = u.userid OR o.a = 1 WHERE u.userid = 5",
        MixedTables,
    );
    // LEFT JOIN ON restricts only the joined rows: no binding from it.
    refused(
        "SELECT * FROM users u LEFT JOIN orders o ON o.userid = u.userid AND u.userid = 5",
        NoKey,
    );
    // Under a RIGHT JOIN, inner ON bindings do not bind the preserved side.
    refused(
        "SELECT * FROM countries c JOIN users u ON u.userid = 5 RIGHT JOIN orders o ON o.userid = u.userid",
        NoKey,
    );
    // Different key types cannot be hashed as one.
    refused(
        "SELECT * FROM users u, accounts a WHERE u.userid = 5 AND a.name = 'x'",
        MixedTables,
    );
    let s = schema();
    let a = analyze(
        b"SELECT * FROM users u JOIN countries c ON c.id = u.country WHERE u.userid = 5",
        &s,
        &OPTS,
    )
    .unwrap();
    assert!(a.unsharded_tables);
    assert!(matches!(
        a.target,
        Target::Keys {
            table: b"users",
            column: b"userid",
            ..
        }
    ));
}

#[test]
fn inserts() {
    keys(
        "INSERT INTO users (userid, name) VALUES (1, 'a'), (2, 'b')",
        &["1", "2"],
    );
    keys("INSERT users (name, userid) VALUE ('a', ?)", &["?0"]);
    keys("REPLACE INTO users (userid) VALUES (7)", &["7"]);
    keys(
        "INSERT IGNORE INTO `users` (`name`, `userid`) VALUES (CONCAT('a', 'b'), 7), (NOW(), '8')",
        &["7", "'8'"],
    );
    keys("INSERT INTO users SET name = 'a', userid = 9", &["9"]);
    keys(
        "INSERT INTO users (userid, n) VALUES (1, 0) ON DUPLICATE KEY UPDATE n = n + VALUES(n)",
        &["1"],
    );
    refused(
        "INSERT INTO users (userid, n) VALUES (1, 0) ON DUPLICATE KEY UPDATE userid = 2",
        UpdateAssignsKey,
    );
    refused("INSERT INTO users VALUES (1, 'a')", NoKey);
    refused(
        "INSERT INTO users (name) VALUES ('a')",
        KeyNotInInsertColumns,
    );
    refused("INSERT INTO users SET name = 'a'", KeyNotInInsertColumns);
    refused(
        "INSERT INTO users (userid) SELECT userid FROM orders",
        InsertWithoutValues,
    );
    refused(
        "INSERT INTO users (userid) VALUES (1+1)",
        KeyComparedWithExpression,
    );
    refused(
        "INSERT INTO users (userid) VALUES (1), (abs(2))",
        KeyComparedWithExpression,
    );
    refused("INSERT INTO users (userid) VALUES (NULL)", InsertNullKey);
    refused(
        "INSERT INTO users (userid) VALUES (DEFAULT)",
        KeyComparedWithExpression,
    );
    unsharded("INSERT INTO countries (id) VALUES (1)");
    refused("INSERT INTO countries SELECT * FROM users", NotUnderstood);
}

#[test]
fn updates_and_deletes() {
    keys("UPDATE users SET name = 'x' WHERE userid = 5", &["5"]);
    keys(
        "UPDATE users SET name = 'x', n = n + 1 WHERE userid = 5 LIMIT 1",
        &["5"],
    );
    keys(
        "UPDATE users u SET u.name = 'x' WHERE u.userid = ?",
        &["?0"],
    );
    refused(
        "UPDATE users SET userid = 6 WHERE userid = 5",
        UpdateAssignsKey,
    );
    refused(
        "UPDATE users u SET u.userid = 6 WHERE userid = 5",
        UpdateAssignsKey,
    );
    refused("UPDATE users SET name = 'x'", NoKey);
    keys(
        "UPDATE users u JOIN orders o ON o.userid = u.userid SET o.n = 1 WHERE u.userid = 5",
        &["5"],
    );
    keys("DELETE FROM users WHERE userid = 5", &["5"]);
    keys(
        "DELETE LOW_PRIORITY FROM users WHERE userid = 5 ORDER BY id LIMIT 3",
        &["5"],
    );
    keys(
        "DELETE o FROM orders o JOIN users u ON u.userid = o.userid WHERE u.userid = 5",
        &["5"],
    );
    keys(
        "DELETE FROM o USING orders o JOIN users u ON u.userid = o.userid WHERE u.userid = 5",
        &["5"],
    );
    refused("DELETE FROM users", NoKey);
    refused("DELETE FROM users WHERE userid = 5 OR 1=1", TopLevelOr);
}

#[test]
fn placeholders_are_counted_in_order() {
    let s = schema();
    let a = analyze(
        b"SELECT * FROM users WHERE a = ? AND userid = ? AND b = '?' /* ? */ AND c = ?",
        &s,
        &OPTS,
    )
    .unwrap();
    assert_eq!(a.placeholders, 3);
    assert!(
        matches!(&a.target, Target::Keys { values, .. } if values[..] == [KeyValue::Placeholder(1)])
    );
}

#[test]
fn session_and_other_statements() {
    let kind = |sql: &str| {
        analyze(sql.as_bytes(), &schema(), &OPTS).map(|a| (a.kind, a.target == Target::Unsharded))
    };
    use StatementKind as K;
    assert_eq!(kind("SET autocommit = 1"), Ok((K::Set, true)));
    assert_eq!(kind("SET NAMES utf8mb4"), Ok((K::Set, true)));
    assert_eq!(kind("USE app"), Ok((K::Use, true)));
    assert_eq!(kind("BEGIN"), Ok((K::Begin, true)));
    assert_eq!(kind("BEGIN WORK"), Ok((K::Begin, true)));
    assert_eq!(kind("START TRANSACTION READ ONLY"), Ok((K::Begin, true)));
    assert_eq!(kind("COMMIT"), Ok((K::Commit, true)));
    assert_eq!(kind("ROLLBACK"), Ok((K::Rollback, true)));
    assert_eq!(kind("ROLLBACK TO SAVEPOINT a"), Ok((K::Other, true)));
    assert_eq!(kind("SHOW CREATE TABLE users"), Ok((K::Show, true)));
    assert_eq!(kind("SELECT 1"), Ok((K::Select, true)));
    assert_eq!(
        kind("SELECT * FROM information_schema.tables"),
        Ok((K::Select, true))
    );
    assert_eq!(kind("XA START 'x'"), Ok((K::Other, true)));
    assert_eq!(kind(""), Ok((K::Other, true)));
    assert_eq!(kind("/* nothing */"), Ok((K::Other, true)));
    refused(
        "SET @x = (SELECT name FROM users WHERE userid = 1)",
        NotUnderstood,
    );
    refused(
        "SET STATEMENT max_statement_time = 1 FOR SELECT * FROM users WHERE userid = 1",
        NotUnderstood,
    );
    refused(
        "BEGIN NOT ATOMIC UPDATE users SET a = 1; END",
        NotUnderstood,
    );
    refused("TRUNCATE users", NotUnderstood);
    refused("CREATE TABLE users (userid INT)", NotUnderstood);
    refused(
        "EXPLAIN SELECT * FROM users WHERE userid = 1",
        NotUnderstood,
    );
    refused("LOAD DATA INFILE 'f' INTO TABLE users", NotUnderstood);
    refused("PREPARE s FROM 'SELECT * FROM users'", NotUnderstood);
    refused("PREPARE s FROM @sql", NotUnderstood);
    unsharded("CALL p(1)");
    unsharded("PREPARE s FROM 'SELECT * FROM countries'");
}

#[test]
fn several_statements_in_one_call() {
    refused(
        "SELECT * FROM users WHERE userid = 1; SELECT 2",
        NotUnderstood,
    );
    keys("SELECT * FROM users WHERE userid = 1;", &["1"]);
    refused("SELECT 1; DELETE FROM users", NotUnderstood);
}

#[test]
fn split() {
    fn parts(sql: &str) -> Vec<&str> {
        split_statements(sql.as_bytes(), &OPTS)
            .into_iter()
            .map(|r| &sql[r])
            .collect()
    }
    assert_eq!(parts("SELECT 1; SELECT 2"), ["SELECT 1", "SELECT 2"]);
    assert_eq!(parts(" ; ;SELECT ';' ;; /* x */ ;"), ["SELECT ';'"]);
    assert_eq!(
        parts("SELECT 1 -- ;\n; SELECT `a;b`"),
        ["SELECT 1 -- ;", "SELECT `a;b`"]
    );
    assert_eq!(
        parts("SELECT 1 /*!50000 ; */ ; 2"),
        ["SELECT 1 /*!50000 ; */", "2"]
    );
    assert_eq!(parts("SELECT 'x; 1"), ["SELECT 'x; 1"]);
    assert_eq!(parts("BEGIN; SELECT 1"), ["BEGIN", "SELECT 1"]);
    assert_eq!(
        parts("SELECT 0; BEGIN NOT ATOMIC SELECT 1; SELECT 2; END; SELECT 3"),
        [
            "SELECT 0",
            "BEGIN NOT ATOMIC SELECT 1; SELECT 2; END; SELECT 3"
        ]
    );
    assert_eq!(
        parts("CREATE PROCEDURE p() BEGIN SELECT 1; END; SELECT 2"),
        ["CREATE PROCEDURE p() BEGIN SELECT 1; END; SELECT 2"]
    );
    assert_eq!(
        parts("CREATE TABLE t (a INT); SELECT 2"),
        ["CREATE TABLE t (a INT)", "SELECT 2"]
    );
}

#[test]
fn no_allocation_shape_of_a_point_select() {
    let s = schema();
    let a = analyze(b"SELECT * FROM users WHERE userid = 42", &s, &OPTS).unwrap();
    match a.target {
        Target::Keys { values, .. } => {
            assert!(!values.spilled());
            assert!(matches!(values[0], KeyValue::Number(Cow::Borrowed(b"42"))));
        }
        Target::Unsharded => panic!("not routed"),
    }
}

#[test]
fn a_backslash_as_the_last_byte_is_an_unterminated_string() {
    refused("SELECT * FROM users WHERE userid = '\\", NotUnderstood);
    refused(
        "SELECT * FROM users WHERE userid = 'abcdefghijklmnopqrstuvwxyz\\",
        NotUnderstood,
    );
    unsharded("SELECT '\\");
}

#[test]
fn hostile_inputs_are_bounded() {
    let deep = format!(
        "SELECT * FROM users WHERE {}userid = 1{}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    assert!(scan(&deep).is_err());
    let deep = format!(
        "SELECT * FROM users WHERE userid = 1 AND {}1{}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    assert_eq!(scan(&deep), Ok(vec!["1".to_string()]));
    let list: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
    let sql = format!("SELECT * FROM users WHERE userid IN ({})", list.join(","));
    assert_eq!(scan(&sql).map(|v| v.len()), Ok(100_000));
    let many = format!("SELECT * FROM {} WHERE 1", vec!["users"; 100].join(","));
    assert!(scan(&many).is_err());
}

#[test]
fn refusal_messages_name_table_column_and_remedy() {
    let s = schema();
    let r = analyze(b"SELECT * FROM users WHERE userid = 1 OR 2", &s, &OPTS).unwrap_err();
    assert_eq!(
        r.to_string(),
        "dbrouter: cannot route this statement on sharded table `users`: the WHERE clause has OR or XOR at its top level, so no `userid` value binds every row (use `userid IN (...)`, or AND `userid = <value>` outside the OR)"
    );
    let r = analyze(b"SELECT * FROM `Users` WHERE x = 1", &s, &OPTS).unwrap_err();
    assert_eq!(
        (r.table.as_str(), r.column.as_str(), r.reason),
        ("Users", "userid", NoKey)
    );
}

/// The plain-row fast path once took a row followed by a comment as the last
/// row: the `,` after the comment was then not understood.
#[test]
fn a_comment_between_plain_rows_does_not_end_the_values() {
    let sql = "INSERT INTO users (userid, n) VALUES (1, 'a') /* c */ , (2, NULL) # x\n, (3, ?)";
    keys(sql, &["1", "2", "3"]);
    let s = schema();
    assert_eq!(
        analyze(sql.as_bytes(), &s, &OPTS),
        analyze_reference(sql.as_bytes(), &s, &OPTS)
    );
}

/// Plain rows and rows read token by token, mixed, give the keys in order
/// and count placeholders in order, as the token path does.
#[test]
fn plain_rows_agree_with_the_token_path() {
    let s = schema();
    for sql in [
        "INSERT INTO users (n, userid) VALUES (?, ?), (NOW(), 5), ('x', -7), (NULL, +8)",
        "INSERT INTO users (userid, n) VALUES ('a\\'b', 1.5), (\"q\", 'it''s'), (0x2A, 1)",
        "INSERT INTO users (userid, n) VALUES (1, 2), (3)",
        "INSERT INTO users (userid, n) VALUES (1, 2) ON DUPLICATE KEY UPDATE n = 3",
        "INSERT INTO users (userid, n) VALUES (NULL, 2)",
        "INSERT INTO users (userid, n) VALUES (1, users)",
        "INSERT INTO users (userid, n) VALUES (1, 2),",
        "INSERT INTO users (userid, n) VALUES (1, 'open",
        "INSERT INTO users (userid, n) VALUES (1, 2) /*!50000 , (3, 4) */",
        "INSERT INTO users (userid, n) VALUES (1 , 2 ) , ( 3 , 4 ) ; SELECT 1",
    ] {
        for opts in [
            OPTS,
            ScanOptions {
                no_backslash_escapes: true,
                ansi_quotes: true,
                server_version: 50544,
            },
        ] {
            assert_eq!(
                analyze(sql.as_bytes(), &s, &opts),
                analyze_reference(sql.as_bytes(), &s, &opts),
                "{sql} {opts:?}"
            );
        }
    }
}
