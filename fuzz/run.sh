#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 30 s each): `fuzz/run.sh [seconds]`.
# The machine has only the stable toolchain; RUSTC_BOOTSTRAP=1 lets cargo fuzz use the
# sanitizer flags it needs. Only `wire` is instrumented (fuzz/ is its own workspace).
# Inputs found along the way go to fuzz/corpus/ (not checked in); the seeds in fuzz/seeds/
# are. A crash fails the run and leaves its input in fuzz/artifacts/<target>/: fix the bug,
# then copy that file into fuzz/regressions/<target>/, where `cargo test` (wire/tests/seeds.rs)
# replays it forever.
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-30}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
export RUSTC_BOOTSTRAP=1
cargo fuzz build
for target in pointer signature_headers generic_key; do
  mkdir -p "corpus/$target"
  echo "fuzz: $target for ${SECS}s"
  log="corpus/$target.log"
  if ! cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$SECS" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "ERROR: fuzz target $target failed; its input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
done
