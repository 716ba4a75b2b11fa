#!/usr/bin/env bash
# What fan-out costs ingestion: new events into a source with `payments` and `forward`, once
# with one destination (its forward table) and once with three (two more `destinations`), on
# an ingest-only instance (no worker: nothing is delivered while it runs), PostgreSQL, a fresh
# database each run. Interleaved: each pair runs A with 1, B with 1, A with 3, B with 3.
#
# Usage: bench/fan_out.sh A_BINARY B_BINARY PAIRS EVENTS CONNECTIONS
#   (the same binary twice measures one tree's 3/1 ratio with a second set of runs)
# Prints one line per run (events/s, and idemhook's and PostgreSQL's CPU per event), then the
# medians and ranges of 3/1 for each binary and of B/A for each destination count.
# Needs the bench tool built (cargo build --release -p idemhook-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
A=$(realpath "$1"); B=$(realpath "$2"); PAIRS=$3; EVENTS=$4; C=$5
BENCH=$PWD/target/release/idemhook-bench
WORK=$(mktemp -d)
. bench/lib.sh
trap cleanup EXIT
SERVER_LOG_LEVEL=critical
export FORWARD_SECRET="whsec_$(head -c 24 /dev/urandom | base64)"
TICK=$(getconf CLK_TCK)
ticks() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }

# One run of binary $1 with $2 destinations; prints "<events/s> <idemhook µs> <PostgreSQL µs>".
run() {
  local source n db0 app0 db1 app1 rate
  source='[default.idemhook.sources.demo]
handlers = ["payments", "forward"]
[default.idemhook.sources.demo.forward]
url = "http://127.0.0.1:8001/webhooks/app"
secret_env = "FORWARD_SECRET"'
  for n in $(seq 2 "$2"); do
    source+=$(printf '\n[default.idemhook.sources.demo.destinations.d%s]\nurl = "http://127.0.0.1:8001/webhooks/app"\nsecret_env = "FORWARD_SECRET"' "$n")
  done
  write_config "$(fresh_db postgres idemhook_fan_out)" "$source" "forward_worker = false"
  launch_idemhook "$1" error
  db0=$(ticks $(pgrep -x postgres)); app0=$(ticks "$SERVER")
  "$BENCH" http --url "http://127.0.0.1:$SERVER_PORT" --source demo -c "$C" --events "$EVENTS" \
    --no-check --label fan-out --json "$WORK/run.json" > /dev/null
  db1=$(ticks $(pgrep -x postgres)); app1=$(ticks "$SERVER")
  stop_server
  rate=$(python3 -c "import json; print(json.load(open('$WORK/run.json'))['throughput_per_sec'])")
  python3 -c "print(f'{$rate:.0f} {($app1 - $app0) / $TICK * 1e6 / $EVENTS:.0f} {($db1 - $db0) / $TICK * 1e6 / $EVENTS:.0f}')"
}

echo "pair binary destinations events/s idemhook_us postgres_us"
for i in $(seq 1 "$PAIRS"); do
  for n in 1 3; do
    for bin in A B; do
      [ "$bin" = A ] && path=$A || path=$B
      echo "$i $bin $n $(run "$path" "$n")"
    done
  done
done | tee "$WORK/runs"
python3 - "$WORK/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]).read().split("\n"):
    if line:
        i, b, n, rate, _, _ = line.split()
        runs[(int(i), b, int(n))] = float(rate)
pairs = sorted({i for i, _, _ in runs})
def show(label, ratios):
    print(f"{label}: median {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}); "
          + ", ".join(f"{r:.3f}" for r in ratios))
for b in "AB":
    show(f"{b}: 3 destinations / 1", [runs[(i, b, 3)] / runs[(i, b, 1)] for i in pairs])
for n in (1, 3):
    show(f"{n} destination(s): B / A", [runs[(i, "B", n)] / runs[(i, "A", n)] for i in pairs])
PY
