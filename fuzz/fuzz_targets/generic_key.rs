//! See `wire::checks::generic_key`: the same checks run over the seeds in `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::checks::generic_key(data));
