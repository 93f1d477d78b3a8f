//! Fuzz target: see `dbrouter::fuzzing::handshake` for the input layout and the
//! properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    dbrouter::fuzzing::handshake(data);
});
