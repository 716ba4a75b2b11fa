#!/usr/bin/env bash
# CPU per request, in interleaved pairs: each binary in turn (A B A B …) takes the same fixed
# number of requests on a fresh database, and the server's CPU time (utime + stime from
# /proc/<pid>/stat, every thread) is divided by that number. Steadier than throughput on a
# shared 2-core machine, where the load generator and the database take the same cores.
#
# Usage: bench/cpu.sh dup|new PAIRS EVENTS CONNECTIONS BINARY...
#   dup: cached duplicates (SQLite, idemhook's default log level: one line per event); a
#        BINARY of `rocket` is the bench tool's bare Rocket route, the duplicates' baseline.
#   new: new events only (PostgreSQL, RUST_LOG=warn); also prints the CPU of every
#        PostgreSQL process per event.
# Prints one line per pair: µs of CPU per request for each binary, and its rate.
# Needs the bench tool built (cargo build --release -p idemhook-bench) and, for `new`, the
# PostgreSQL server as on the developers' machines (see bench/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=$1; PAIRS=$2; EVENTS=$3; C=$4; shift 4
BINS=()
for bin in "$@"; do
  if [ "$bin" = rocket ]; then BINS+=(rocket); else BINS+=("$(realpath "$bin")"); fi
done
BENCH=$PWD/target/release/idemhook-bench
WORK=$(mktemp -d)
. bench/lib.sh
trap cleanup EXIT
TICK=$(getconf CLK_TCK)

# Seconds of CPU used so far by the processes given.
cpu() { for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done | awk -v t="$TICK" '{s += $14 + $15} END {print s / t}'; }
postgres_cpu() { cpu $(pgrep -f '^postgres|bin/postgres' || true); }

# One run; prints "<µs per request> <PostgreSQL µs per request> <requests/s>".
run() {
  local bin=$1 args dup=100 pg_before=0 pg_after=0 before after
  if [ "$bin" = rocket ]; then
    start_rocket
    args=(--pool 1)
  elif [ "$MODE" = new ]; then
    start_idemhook "$bin" "$(fresh_db postgres idemhook_cpu)" warn
    args=(--source bench)
  else
    start_idemhook "$bin" "$(fresh_db sqlite bench)" default
    args=(--source bench)
  fi
  local warm=20000
  [ "$MODE" = new ] && dup=0 warm=5000
  # Warm up: the duplicates' pool, the caches, the connections.
  "$BENCH" http "${args[@]}" -c "$C" --events "$warm" --duplicates "$dup" --no-check >/dev/null
  before=$(cpu "$SERVER"); [ "$MODE" = new ] && pg_before=$(postgres_cpu)
  "$BENCH" http "${args[@]}" -c "$C" --events "$EVENTS" --duplicates "$dup" --no-check \
    --json "$WORK/run.json" >/dev/null
  after=$(cpu "$SERVER"); [ "$MODE" = new ] && pg_after=$(postgres_cpu)
  stop_server
  python3 - "$before" "$after" "$pg_before" "$pg_after" "$EVENTS" "$WORK/run.json" <<'PY'
import json, sys
b, a, pb, pa, n = (float(x) for x in sys.argv[1:6])
rate = json.load(open(sys.argv[6]))["throughput_per_sec"]
print(f"{(a - b) * 1e6 / n:.1f} {(pa - pb) * 1e6 / n:.1f} {rate:.0f}")
PY
}

for i in $(seq 1 "$PAIRS"); do
  line="pair $i"
  for bin in "${BINS[@]}"; do
    run "$bin" > "$WORK/run.txt"
    read -r us pg rate < "$WORK/run.txt"
    name=$(basename "$bin")
    if [ "$MODE" = new ]; then
      line="$line | $name ${us} µs, PostgreSQL ${pg} µs, ${rate}/s"
    else
      line="$line | $name ${us} µs, ${rate}/s"
    fi
  done
  echo "$line"
done
