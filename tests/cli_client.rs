//! The `mariadb` command-line client through dbrouter: the same script gives
//! the same bytes on stdout and stderr as against the server itself.

mod common;

use common::*;

const SCRIPT: &str = r#"DROP TABLE IF EXISTS cli_t;
CREATE TABLE cli_t (id INT PRIMARY KEY, name VARCHAR(50) CHARACTER SET utf8mb4, price DECIMAL(10,2), created DATE, data BLOB);
INSERT INTO cli_t VALUES (1, 'ä widget ✓', 9.99, '2024-01-02', X'00FF10'), (2, 'gadget "x" \'y\'', NULL, '2024-03-04', NULL);
SELECT * FROM cli_t ORDER BY id;
SELECT COUNT(*) AS n, SUM(price) AS total FROM cli_t;
INSERT INTO cli_t VALUES (1, 'dup', 0, NULL, NULL);
SELEC broken;
SELECT * FROM no_such_table;
SELECT 1 AS a; SELECT 2 AS b, 3 AS c;
SELECT seq, REPEAT('r', seq) FROM seq_1_to_5;
UPDATE cli_t SET price = price * 2 WHERE id = 1;
SELECT id, price FROM cli_t;
SELECT CAST('abc' AS INT);
SHOW WARNINGS;
DELETE FROM cli_t;
DROP TABLE cli_t;
SELECT 'done' AS status;
"#;

/// Runs the script with `args` against `port` as `app`.
fn run(port: u16, args: &[&str]) -> CliOutput {
    let mut all = vec!["--force", "--default-character-set=utf8mb4"];
    all.extend_from_slice(args);
    all.push(APP_DB);
    mariadb_cli_output(port, APP_USER, APP_PASSWORD, &all, SCRIPT)
}

/// Batch (tab-separated) and table output, with column metadata, compared
/// byte for byte, errors included.
#[test]
fn script_output_is_identical() {
    let db = MariaDb::start();
    let runs: [&[&str]; 4] = [
        &["--batch"],
        &["--table"],
        &["--batch", "--column-type-info"],
        &["--table", "-vv"],
    ];
    let direct: Vec<CliOutput> = runs.iter().map(|args| run(db.port(), args)).collect();
    for (args, direct) in runs.iter().zip(&direct) {
        // --force runs every statement, prints the three errors, exits 0.
        assert_eq!(direct.status.code(), Some(0), "{args:?}: {}", direct.stderr);
        assert!(
            direct.stdout.contains("done"),
            "{args:?}: {}",
            direct.stdout
        );
        assert_eq!(
            direct
                .stderr
                .lines()
                .filter(|l| l.starts_with("ERROR "))
                .count(),
            3,
            "{args:?}: {}",
            direct.stderr
        );
        assert!(direct
            .stderr
            .contains("ERROR 1062 (23000) at line 6: Duplicate entry '1' for key 'PRIMARY'"));
    }
    let proxy = proxy_for(&db);
    for (args, direct) in runs.iter().zip(&direct) {
        let via = run(proxy.port(), args);
        assert_eq!(via.status.code(), direct.status.code(), "{args:?}");
        assert_eq!(via.stdout, direct.stdout, "{args:?}: stdout differs");
        assert_eq!(via.stderr, direct.stderr, "{args:?}: stderr differs");
    }
}

/// `status` (which calls COM_STATISTICS) looks the same apart from the
/// numbers that differ per connection (ids, port, uptime, counters).
#[test]
fn status_command_output_matches() {
    let db = MariaDb::start();
    let masked = |port: u16| {
        let (status, out, err) = mariadb_cli(port, APP_USER, APP_PASSWORD, &[APP_DB], "status\n");
        assert!(status.success(), "{err}");
        assert!(out.contains("Uptime:"), "{out}");
        assert!(out.contains("Threads: "), "no COM_STATISTICS line: {out}");
        out.lines()
            .map(|l| {
                if l.starts_with("TCP port:") {
                    "TCP port: P".to_string()
                } else {
                    l.chars()
                        .map(|c| if c.is_ascii_digit() { 'N' } else { c })
                        .collect::<String>()
                }
            })
            .map(|l| {
                // Runs of digits may change length between runs.
                let mut s = String::new();
                for c in l.chars() {
                    if !(c == 'N' && s.ends_with('N')) {
                        s.push(c);
                    }
                }
                s
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let direct = masked(db.port());
    let proxy = proxy_for(&db);
    assert_eq!(masked(proxy.port()), direct);
}

/// `--local-infile=1` with LOAD DATA LOCAL INFILE from a real file.
#[test]
fn load_data_local_infile_from_the_cli() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.csv");
    let mut csv = String::new();
    for i in 0..3_000 {
        csv.push_str(&format!("{i},name {i} ✓,{}\n", "z".repeat(i % 50)));
    }
    std::fs::write(&path, &csv).unwrap();
    let script = format!(
        "DROP TABLE IF EXISTS li;
         CREATE TABLE li (id INT PRIMARY KEY, name VARCHAR(50) CHARACTER SET utf8mb4, pad VARCHAR(60));
         LOAD DATA LOCAL INFILE '{}' INTO TABLE li CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',';
         SELECT COUNT(*), SUM(id), SUM(LENGTH(pad)), MAX(name) FROM li;\n",
        path.display()
    );
    let run = |port: u16| {
        mariadb_cli(
            port,
            APP_USER,
            APP_PASSWORD,
            &[
                "--batch",
                "--local-infile=1",
                "--default-character-set=utf8mb4",
                APP_DB,
            ],
            &script,
        )
    };
    let (status, out, err) = run(db.port());
    assert!(status.success(), "{err}");
    let pads: usize = (0..3_000).map(|i| i % 50).sum();
    let expected = format!(
        "COUNT(*)\tSUM(id)\tSUM(LENGTH(pad))\tMAX(name)\n3000\t4498500\t{pads}\tname 999 ✓\n"
    );
    assert_eq!(out, expected);
    let proxy = proxy_for(&db);
    let (pstatus, pout, perr) = run(proxy.port());
    assert!(pstatus.success(), "{perr}");
    assert_eq!(pout, out);
}
