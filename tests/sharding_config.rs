//! Which shard a key goes to, checked against its two outside authorities:
//!
//! - the server: for every spelling of a key the proxy accepts, the rows a
//!   real MariaDB finds with `key = <spelling>` are exactly the rows whose
//!   canonical key is the spelling's (equal to the server <=> same bytes
//!   hashed), for integer, `general_ci`, `_bin` and VARBINARY columns, in
//!   statement text and as prepared-statement parameters;
//! - README.md: its configuration example parses, and its Python snippet
//!   computes the same buckets and shards as the proxy.

mod common;

use std::borrow::Cow;
use std::process::Command;

use common::*;
use dbrouter::config::Config;
use dbrouter::route::hash::bucket_of;
use dbrouter::route::key::canonical_key;
use dbrouter::route::schema::KeyType;
use dbrouter::route::topology::Topology;
use dbrouter::route::value::KeyValue;
use mysql::prelude::Queryable;
use mysql::{Conn, Value};
use smallvec::SmallVec;

const CI: KeyType = KeyType::StringCaseInsensitive;
const BIN: KeyType = KeyType::StringBinary { pad_space: true };
const VARBINARY: KeyType = KeyType::StringBinary { pad_space: false };

fn canonical(value: &KeyValue<'_>, key_type: KeyType) -> Option<Vec<u8>> {
    let mut out = SmallVec::new();
    canonical_key(value, key_type, &mut out).ok()?;
    Some(out.to_vec())
}

fn num(s: &str) -> KeyValue<'static> {
    KeyValue::Number(Cow::Owned(s.as_bytes().to_vec()))
}
fn st(s: &[u8]) -> KeyValue<'static> {
    KeyValue::Str(Cow::Owned(s.to_vec()))
}

/// The SQL text of a literal for a key value (what the scanner would have
/// found it in).
fn sql_literal(value: &KeyValue<'_>) -> Option<String> {
    Some(match value {
        KeyValue::Number(t) => String::from_utf8(t.to_vec()).unwrap(),
        KeyValue::Str(b) => {
            let text = std::str::from_utf8(b).unwrap();
            format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        KeyValue::Binary(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("x'{hex}'")
        }
        _ => return None,
    })
}

/// A prepared-statement parameter for a key value, as the `mysql` crate
/// binds it.
fn param(value: &KeyValue<'_>) -> Option<Value> {
    match value {
        KeyValue::Int(v) => Some(Value::Int(*v)),
        KeyValue::UInt(v) => Some(Value::UInt(*v)),
        KeyValue::Str(b) => Some(Value::Bytes(b.to_vec())),
        _ => None,
    }
}

/// Checks one column: `rows` are the values stored (as the server returns
/// them), `spellings` the key values to look them up with. For every
/// spelling the proxy accepts, the server must find exactly the rows with
/// the same canonical key. Returns how many lookups were checked.
fn check_column(
    conn: &mut Conn,
    table: &str,
    key_type: KeyType,
    rows: &[Vec<u8>],
    spellings: &[KeyValue<'static>],
) -> usize {
    let mut checked = 0;
    let select = format!("SELECT CONCAT(k) FROM {table} WHERE k = ");
    let stmt = conn.prep(format!("{select}?")).unwrap();
    for spelling in spellings {
        let Some(want) = canonical(spelling, key_type) else {
            continue; // refused: nothing to agree on
        };
        let mut expected: Vec<Vec<u8>> = rows
            .iter()
            .filter(|r| {
                canonical(&KeyValue::Str(Cow::Borrowed(r)), key_type).as_ref() == Some(&want)
            })
            .cloned()
            .collect();
        expected.sort();
        let shown = String::from_utf8_lossy(&want).into_owned();
        if let Some(literal) = sql_literal(spelling) {
            let sql = format!("{select}{literal}");
            let mut found: Vec<Vec<u8>> = conn.query(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            found.sort();
            assert_eq!(found, expected, "{sql} (canonical {shown:?})");
            checked += 1;
        }
        if let Some(p) = param(spelling) {
            let mut found: Vec<Vec<u8>> = conn.exec(&stmt, (p.clone(),)).unwrap();
            found.sort();
            assert_eq!(
                found, expected,
                "{table}.k = ? with {p:?} (canonical {shown:?})"
            );
            checked += 1;
        }
    }
    checked
}

fn integer_spellings() -> Vec<KeyValue<'static>> {
    let mut all = Vec::new();
    for v in [0i64, 1, 7, 42, -1, -42, 255, 65536, i64::MAX, i64::MIN] {
        let m = v.unsigned_abs();
        let sign = if v < 0 { "-" } else { "" };
        all.extend([
            num(&v.to_string()),
            num(&format!("{sign}00{m}")),
            num(&format!("{sign}0x{m:x}")),
            num(&format!("{sign}0x{m:X}")),
            num(&format!("{sign}0b{m:b}")),
            st(v.to_string().as_bytes()),
            st(format!("{sign}000{m}").as_bytes()),
            KeyValue::Int(v),
        ]);
        if v >= 0 {
            all.extend([
                num(&format!("+{m}")),
                st(format!("+{m}").as_bytes()),
                KeyValue::UInt(m),
            ]);
        }
    }
    all.extend([
        num("-0"),
        st(b"-0"),
        st(b"-00"),
        num("18446744073709551615"),
        num("0xFFFFFFFFFFFFFFFF"),
        st(b"18446744073709551615"),
        KeyValue::UInt(u64::MAX),
        KeyValue::UInt(1 << 63),
        num("9223372036854775808"),
        // Refused by the proxy (not checked, listed to show they are skipped).
        num("42.0"),
        st(b" 42"),
        KeyValue::Binary(Cow::Borrowed(b"*")),
    ]);
    all
}

fn string_spellings() -> Vec<KeyValue<'static>> {
    let mut all: Vec<KeyValue<'static>> = [
        &b"acme"[..],
        b"Acme",
        b"ACME",
        b"acme ",
        b"ACME   ",
        b" acme",
        b"acme.",
        b"acme\t",
        b"a\tb",
        b"",
        b"   ",
        b"42",
        b"042",
        b"user@example.com",
        b"USER@EXAMPLE.COM ",
        b"[]^_`{|}~",
        b"x",
        b"X",
    ]
    .iter()
    .map(|b| st(b))
    .collect();
    all.extend([
        KeyValue::Binary(Cow::Borrowed(b"acme")),
        KeyValue::Binary(Cow::Borrowed(b"acme ")),
        num("42"),
        st("é".as_bytes()),
    ]);
    all
}

#[test]
fn the_server_agrees_with_canonical_keys() {
    let db = MariaDb::start();
    let mut conn = db.root_conn();
    conn.query_drop(
        "CREATE DATABASE keys_check; USE keys_check;
         CREATE TABLE ti (k BIGINT PRIMARY KEY);
         CREATE TABLE tu (k BIGINT UNSIGNED PRIMARY KEY);
         CREATE TABLE ts (k VARCHAR(64) PRIMARY KEY) CHARSET utf8mb4 COLLATE utf8mb4_general_ci;
         CREATE TABLE tb (k VARCHAR(64) PRIMARY KEY) CHARSET utf8mb4 COLLATE utf8mb4_bin;
         CREATE TABLE tv (k VARBINARY(64) PRIMARY KEY);",
    )
    .unwrap();
    conn.query_drop("SET NAMES utf8mb4").unwrap();

    // Integer columns hold every canonical value that fits them.
    let ints = integer_spellings();
    let mut signed: Vec<Vec<u8>> = Vec::new();
    let mut unsigned: Vec<Vec<u8>> = Vec::new();
    for v in &ints {
        let Some(c) = canonical(v, KeyType::Int) else {
            continue;
        };
        let text = String::from_utf8(c.clone()).unwrap();
        if text.parse::<i64>().is_ok() && !signed.contains(&c) {
            conn.query_drop(format!("INSERT INTO ti VALUES ({text})"))
                .unwrap();
            signed.push(c.clone());
        }
        if text.parse::<u64>().is_ok() && !unsigned.contains(&c) {
            conn.query_drop(format!("INSERT INTO tu VALUES ({text})"))
                .unwrap();
            unsigned.push(c);
        }
    }
    let mut checked = check_column(&mut conn, "ti", KeyType::Int, &signed, &ints);
    checked += check_column(&mut conn, "tu", KeyType::Int, &unsigned, &ints);

    // String columns hold one row per value distinct to their collation.
    let strings = string_spellings();
    for (table, key_type) in [("ts", CI), ("tb", BIN), ("tv", VARBINARY)] {
        let mut rows: Vec<Vec<u8>> = Vec::new();
        let mut seen: Vec<Vec<u8>> = Vec::new();
        for v in &strings {
            let KeyValue::Str(b) = v else { continue };
            let Some(c) = canonical(v, key_type) else {
                continue;
            };
            if seen.contains(&c) {
                continue;
            }
            conn.exec_drop(
                format!("INSERT INTO {table} VALUES (?)"),
                (Value::Bytes(b.to_vec()),),
            )
            .unwrap_or_else(|e| panic!("insert {b:?} into {table}: {e}"));
            seen.push(c);
            rows.push(b.to_vec());
        }
        // What the server hands back (VARCHAR keeps trailing spaces).
        let stored: Vec<Vec<u8>> = conn
            .query(format!("SELECT CONCAT(k) FROM {table}"))
            .unwrap();
        assert_eq!(stored.len(), rows.len(), "{table}: distinct rows");
        checked += check_column(&mut conn, table, key_type, &stored, &strings);
    }
    assert!(checked > 200, "only {checked} lookups checked");
}

/// The TOML and Python blocks of README's "Which shard a key goes to".
fn readme_section() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("## Which shard a key goes to")
        .expect("README.md has the section");
    let rest = &readme[start + 3..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_string()
}

fn code_block(section: &str, lang: &str) -> String {
    let fence = format!("```{lang}\n");
    let start = section.find(&fence).expect("code block") + fence.len();
    let len = section[start..].find("```").unwrap();
    section[start..start + len].to_string()
}

const PROXY_AND_SHARDS: &str = r#"
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
"#;

#[test]
fn readme_config_example_parses() {
    let example = code_block(&readme_section(), "toml");
    let config = Config::from_toml(&format!("{PROXY_AND_SHARDS}{example}")).unwrap();
    assert_eq!(config.buckets(), 1024);
    assert_eq!(config.schema().tables().count(), 3);
    // With its commented ranges switched on, too.
    let with_ranges = example
        .replace("# [[sharding", "[[sharding")
        .replace("# buckets = \"", "buckets = \"");
    let with_ranges = with_ranges.replace("# shard = ", "shard = ");
    let config = Config::from_toml(&format!("{PROXY_AND_SHARDS}{with_ranges}")).unwrap();
    assert_eq!(config.bucket_ranges().len(), 2);
}

#[test]
fn readme_python_agrees_with_the_proxy() {
    let python = code_block(&readme_section(), "python");
    let config =
        Config::from_toml(&format!("{PROXY_AND_SHARDS}[sharding]\nbuckets = 1024\n")).unwrap();
    let topology = Topology::from_config(&config);

    let ints: Vec<i128> = vec![
        0,
        1,
        42,
        -42,
        7_000_000,
        i128::from(i64::MAX),
        i128::from(i64::MIN),
        i128::from(u64::MAX),
    ];
    let strings: Vec<(&str, &str, KeyType)> = vec![
        ("Acme ", "general_ci", CI),
        ("user@example.com", "general_ci", CI),
        ("Acme ", "bin", BIN),
        ("Acme ", "binary", VARBINARY),
        ("", "general_ci", CI),
    ];
    let mut script = python.clone();
    script.push_str("\nimport sys\n");
    for v in &ints {
        script.push_str(&format!(
            "b = bucket({v}); print(b, default_shard_of(b, [1, 0]))\n"
        ));
    }
    for (s, collation, _) in &strings {
        script.push_str(&format!(
            "b = bucket({s:?}, key_type='string', collation={collation:?}); \
             print(b, default_shard_of(b, [0, 1]))\n"
        ));
    }
    let output = match Command::new("python3").arg("-c").arg(&script).output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("python3 not available ({e}): README snippet not run");
            return;
        }
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<(u32, u32)> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (b, s) = l.split_once(' ').unwrap();
            (b.parse().unwrap(), s.parse().unwrap())
        })
        .collect();
    let mut want = Vec::new();
    for v in &ints {
        let value = if *v < 0 {
            KeyValue::Int(*v as i64)
        } else {
            KeyValue::UInt(*v as u64)
        };
        want.push((value, KeyType::Int));
    }
    for (s, _, key_type) in &strings {
        want.push((st(s.as_bytes()), *key_type));
    }
    assert_eq!(lines.len(), want.len());
    for ((value, key_type), (py_bucket, py_shard)) in want.iter().zip(lines) {
        let bytes = canonical(value, *key_type).unwrap();
        assert_eq!(bucket_of(&bytes, 1024).0, py_bucket, "{value:?}");
        let shard = topology.route_key(value, *key_type).unwrap();
        assert_eq!(shard.id.0, py_shard, "{value:?}");
    }
}
