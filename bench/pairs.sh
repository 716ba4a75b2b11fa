#!/usr/bin/env bash
# Interleaved pairs: two idemhook binaries, A and B, measured one right after the other (A B A B
# …), each run on a fresh database, so that the drift of a shared machine (20 % within
# minutes here) falls on both sides of every pair. Prints every pair's B/A throughput ratio,
# and per cell the median and min–max of those ratios.
#
# Usage: bench/pairs.sh A_BINARY B_BINARY [pairs (5)] [seconds per run (8)] [database (postgres)]
# A_BINARY may be `rocket`: the bench tool's bare Rocket route (duplicates cells only), the
# baseline a duplicate is held to. IDEMHOOK_LOG sets idemhook's RUST_LOG (default `warn`;
# `default` leaves it unset: idemhook's own default, `info`, one line per event).
# Environment: CELLS="new:16 new:64 dup:16 dup:64" (new = new events only, dup = duplicates
# only), OUT=directory for the JSON results (default bench/results/pairs-<time>).
# Needs the bench tool built (cargo build --release -p idemhook-bench) and, for postgres or
# mariadb, the server as on the developers' machines (see bench/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1; [ "$A" = rocket ] || A=$(realpath "$1")
B=$(realpath "$2")
IDEMHOOK_LOG=${IDEMHOOK_LOG:-warn}
PAIRS=${3:-5}
SECS=${4:-8}
DB=${5:-postgres}
CELLS=${CELLS:-new:16 new:64 dup:16 dup:64}
OUT=${OUT:-bench/results/pairs-$(date -u +%Y%m%dT%H%M%SZ)}
BENCH=target/release/idemhook-bench
mkdir -p "$OUT"
WORK=$(mktemp -d)
. bench/lib.sh
trap cleanup EXIT

# One run of binary $1 on cell $2 (new|dup) at $3 connections; prints events per second.
run() {
  local bin=$1 kind=$2 c=$3 tag=$4 dup
  if [ "$bin" = rocket ]; then
    start_rocket
    "$BENCH" http --url http://127.0.0.1:8000 --no-check -c "$c" --duration "$SECS" \
      --duplicates 100 --pool 1 --label "$tag" --json "$OUT/$tag.json" >/dev/null
  else
    start_idemhook "$bin" "$(fresh_db "$DB" idemhook_pairs)" "$IDEMHOOK_LOG"
    dup=0; [ "$kind" = dup ] && dup=100
    "$BENCH" http --url http://127.0.0.1:8000 --source bench -c "$c" --duration "$SECS" \
      --duplicates "$dup" --label "$tag" --json "$OUT/$tag.json" >/dev/null
  fi
  stop_server
  python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["throughput_per_sec"]))' "$OUT/$tag.json"
}

printf '%-8s %-5s %10s %10s %7s\n' cell pair A B B/A | tee "$OUT/pairs.txt"
for cell in $CELLS; do
  kind=${cell%%:*}; c=${cell##*:}
  ratios=()
  for i in $(seq 1 "$PAIRS"); do
    a=$(run "$A" "$kind" "$c" "A-$kind-c$c-$i")
    b=$(run "$B" "$kind" "$c" "B-$kind-c$c-$i")
    r=$(python3 -c "print(f'{$b/$a:.3f}')")
    ratios+=("$r")
    printf '%-8s %-5s %10s %10s %7s\n' "$kind:$c" "$i" "$a" "$b" "$r" | tee -a "$OUT/pairs.txt"
  done
  python3 - "$kind:$c" "${ratios[@]}" <<'PY' | tee -a "$OUT/pairs.txt"
import statistics, sys
cell, ratios = sys.argv[1], [float(r) for r in sys.argv[2:]]
print(f"{cell:<8} median B/A {statistics.median(ratios):.3f}  (min {min(ratios):.3f}, max {max(ratios):.3f}, {len(ratios)} pairs)")
PY
done
echo "results: $OUT"
