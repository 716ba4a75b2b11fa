#!/usr/bin/env bash
# Forwarding on PostgreSQL (or MariaDB, DB=mariadb): the time to drain a 100,000-event backlog to a bare receiver with
# ingestion idle, next to the ingest rate that built it; then the commit → delivered latency
# with events arriving at half that rate (RATES="half 1000 500" adds paced rates).
#
# Usage: bench/forward.sh [events (100000)] [connections (16)]
# Environment: FORWARD_CONCURRENCY (the source's `concurrency`, default 32), RATES (below),
# DRAIN_SQL (run before the drain), DB (postgres or mariadb).
# Needs the release binaries (cargo build --release; cargo build --release -p idemhook-bench)
# and PostgreSQL as on the developers' machines. The receiver is the bench tool's bare Rocket
# route (baseline-server), which answers 200 to any JSON body.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-100000}
CONNS=${2:-16}
BIN=${IDEMHOOK_BIN:-$PWD/target/release/idemhook}
BENCH=$PWD/target/release/idemhook-bench
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
DBNAME=idemhook_forward_bench
# DB: postgres (default) or mariadb.
case ${DB:-postgres} in
  postgres)
    URL="postgres://postgres@127.0.0.1:5432/$DBNAME"
    psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" -qc "CREATE DATABASE $DBNAME"
    sql() { psql -h 127.0.0.1 -U postgres -d "$DBNAME" -Atqc "$1"; }
    LATENCY_MS="extract(epoch FROM delivered_at - created_at) * 1000" ;;
  mariadb)
    URL="mysql://root@127.0.0.1:3306/$DBNAME"
    mysql -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $DBNAME; CREATE DATABASE $DBNAME"
    sql() { mysql -h127.0.0.1 -uroot -N -B "$DBNAME" -e "$1"; }
    LATENCY_MS="TIMESTAMPDIFF(MICROSECOND, created_at, delivered_at) / 1000" ;;
  *) echo "DB must be postgres or mariadb" >&2; exit 2 ;;
esac
export FORWARD_SECRET="whsec_$(head -c 24 /dev/urandom | base64)"

config() { # poll_ms [worker: true|false]
  cat > "$WORK/Rocket.toml" <<TOML
[default]
port = 8000
log_level = "critical"
[default.idemhook]
database_url = "$URL"
forward_poll_ms = $1
forward_worker = ${2:-true}
[default.idemhook.sources.demo]
handlers = ["forward"]
[default.idemhook.sources.demo.forward]
url = "http://127.0.0.1:8001/webhooks/app"
secret_env = "FORWARD_SECRET"
concurrency = ${FORWARD_CONCURRENCY:-32}
TOML
}
start() {
  (cd "$WORK" && RUST_LOG=error exec "$BIN") &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -sf localhost:8000/health/ready >/dev/null && return; sleep 0.1; done
  echo "idemhook did not start" >&2; exit 1
}
stop() { kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'; }
now() { date +%s.%N; }

echo "== ingest $EVENTS new events at $CONNS connections (an ingest-only instance: no worker)"
config 60000 false
start
"$BENCH" http --url http://127.0.0.1:8000 --source demo -c "$CONNS" --events "$EVENTS" --no-check --label ingest --json "$WORK/ingest.json" | tail -n 3
stop
echo "pending: $(sql "SELECT count(*) FROM deliveries WHERE status = 'pending'")"

# DRAIN_SQL: statements to run before the drain (to compare index sets on one binary).
[ -n "${DRAIN_SQL:-}" ] && sql "$DRAIN_SQL" >/dev/null
echo "== drain the backlog to a bare receiver, ingestion idle"
"$BENCH" baseline-server --port 8001 &
PIDS+=($!)
sleep 1
config 50 true
T0=$(now)
start
while [ "$(sql "SELECT count(*) FROM deliveries WHERE status = 'pending'")" != 0 ]; do sleep 0.2; done
T1=$(now)
python3 - "$T0" "$T1" "$EVENTS" <<'PY'
import sys
t0, t1, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"drained {n} deliveries in {t1 - t0:.1f} s (from launch): {n / (t1 - t0):,.0f} deliveries/s")
PY
echo "attempts: $(sql "SELECT sum(attempts), sum(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END) FROM deliveries")"

HALF=$(python3 -c "import json; print(int(json.load(open('$WORK/ingest.json'))['throughput_per_sec'] / 2))")
# RATES: the paced rates to measure latency at ("half" = half the ingest rate above).
for RATE in ${RATES:-half}; do
  [ "$RATE" = half ] && RATE=$HALF
  echo "== latency, commit to delivered, events offered at $RATE/s for 20 s"
  sql "TRUNCATE deliveries" >/dev/null
  "$BENCH" http --url http://127.0.0.1:8000 --source demo -c "$CONNS" --duration 20 --rate "$RATE" --no-check --label "rate$RATE" | tail -n 3
  while [ "$(sql "SELECT count(*) FROM deliveries WHERE status = 'pending'")" != 0 ]; do sleep 0.2; done
  sql "SELECT $LATENCY_MS FROM deliveries" | python3 -c '
import statistics, sys
ms = sorted(float(line) for line in sys.stdin if line.strip())
q = statistics.quantiles(ms, n=100, method="inclusive")
print(f"{len(ms)} delivered; latency ms p50 {q[49]:.1f}, p90 {q[89]:.1f}, p99 {q[98]:.1f}, max {ms[-1]:.1f}")'

done
