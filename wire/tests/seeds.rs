//! The fuzz targets' checks over every checked-in input: the seed corpus (`fuzz/seeds/`) and
//! every input a fuzzer crashed on (`fuzz/regressions/`, where `fuzz/run.sh` asks that a
//! crash's artifact be copied once fixed). Stable toolchain, no fuzzer needed.

use std::path::Path;

fn run(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut count = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable directory").path();
            if path.file_name().is_some_and(|n| n == ".keep") {
                continue;
            }
            let data = std::fs::read(&path).expect("a readable input");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails its check", path.display());
            count += 1;
        }
    }
    assert!(
        count > 0,
        "no inputs for {target}: the seed corpus is missing"
    );
}

#[test]
fn pointer_inputs() {
    run("pointer", wire::checks::pointer);
}

#[test]
fn signature_header_inputs() {
    run("signature_headers", wire::checks::signature_headers);
}

#[test]
fn generic_key_inputs() {
    run("generic_key", wire::checks::generic_key);
}
