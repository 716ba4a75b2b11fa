//! See `wire::checks::signature_headers`: the same checks run over the seeds in `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::checks::signature_headers(data));
