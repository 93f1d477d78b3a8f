//! The shard-key scanner on arbitrary bytes (`[flags, sql...]`, see
//! `dbrouter::fuzzing::scanner`): it never panics and answers the same twice.
//! Where the input keeps to what sqlparser and MariaDB read alike (default
//! sql_mode, printable ASCII, none of `&&`, `||`, XOR, versioned comments,
//! backslashes or double quotes, which sqlparser reads differently), a
//! statement the scanner routes must route the same way by the oracle of
//! `tests/scanner_differential.rs` whenever that oracle routes it by key.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../tests/scanner_differential.rs"]
mod differential;

use dbrouter::route::scanner::ScanOptions;
use differential::Outcome;

fn comparable(sql: &[u8]) -> Option<&str> {
    if !sql
        .iter()
        .all(|&c| c == b'\n' || c == b'\t' || (b' '..=b'~').contains(&c))
    {
        return None;
    }
    let text = std::str::from_utf8(sql).ok()?;
    let upper = text.to_ascii_uppercase();
    // sqlparser also takes `"users"` for a table name where MariaDB sees a
    // string (and a syntax error), and has no `0b101` bit literals.
    let unsure = ["&&", "||", "XOR", "/*!", "/*M!", "\\", "\"", "0B"];
    (!unsure.iter().any(|u| upper.contains(u))).then_some(text)
}

/// Placeholder indexes are checked by the golden tests: sqlparser does not
/// tell `?` in a comment from one in the code.
fn without_indexes(o: Outcome) -> Outcome {
    match o {
        Outcome::Keys(set) => Outcome::Keys(
            set.into_iter()
                .map(|v| {
                    if v.starts_with('?') {
                        "?".to_string()
                    } else {
                        v
                    }
                })
                .collect(),
        ),
        o => o,
    }
}

fuzz_target!(|data: &[u8]| {
    dbrouter::fuzzing::scanner(data);
    let Some((&flags, sql)) = data.split_first() else {
        return;
    };
    if flags & 0x0f != 0 {
        return;
    }
    let Some(text) = comparable(sql) else {
        return;
    };
    let schema = differential::schema();
    let opts = ScanOptions::new(differential::SERVER_VERSION);
    let scanned = without_indexes(differential::scanner_outcome(sql, &schema, &opts));
    if scanned == Outcome::Refused {
        return;
    }
    // Asserted: the scanner never routes by other keys than the oracle, and
    // never calls unsharded what the oracle routes by key. Not asserted: the
    // scanner routing what the oracle refuses or calls unsharded, since on
    // arbitrary text that is mostly sqlparser accepting what MariaDB rejects
    // (`SELECT a* FROM t` parses there as `a * FROM`); the differential test
    // holds the scanner to those on statements that are valid.
    if let Some(expected) = differential::oracle::outcome(text) {
        let expected = without_indexes(expected);
        match (&scanned, &expected) {
            (Outcome::Keys(_), Outcome::Keys(_)) | (Outcome::Unsharded, Outcome::Keys(_)) => {
                assert_eq!(scanned, expected, "{text}")
            }
            _ => {}
        }
    }
});
