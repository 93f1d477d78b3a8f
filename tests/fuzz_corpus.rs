//! Replays every committed fuzz corpus file through the same entry points
//! the cargo-fuzz targets call, so stable `cargo test` exercises them (and
//! every crash found by fuzzing, once its input is added to the corpus).

use std::fs;
use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    for path in &files {
        let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // A panic names the file, to rerun it with `cargo fuzz run TARGET FILE`.
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(result.is_ok(), "{target}: {} failed", path.display());
    }
}

#[test]
fn framer_corpus() {
    replay("framer", dbrouter::fuzzing::framer);
}

#[test]
fn handshake_corpus() {
    replay("handshake", dbrouter::fuzzing::handshake);
}

#[test]
fn command_corpus() {
    replay("command", dbrouter::fuzzing::command);
}

#[test]
fn reply_corpus() {
    replay("reply", dbrouter::fuzzing::reply);
}

#[test]
fn scanner_corpus() {
    replay("scanner", dbrouter::fuzzing::scanner);
}
