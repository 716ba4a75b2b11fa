#!/usr/bin/env bash
# Forwarding on PostgreSQL (or MariaDB, DB=mariadb): the time to drain a 100,000-event backlog to a bare receiver with
# ingestion idle, next to the ingest rate that built it; then the commit → delivered latency
# with events arriving at half that rate (RATES="half 1000 500" adds paced rates).
#
# Usage: bench/forward.sh [events (100000)] [connections (16)]
# Environment: FORWARD_CONCURRENCY (the source's `concurrency`, default 32), DESTINATIONS (how
# many destinations every event fans out to, all to the same receiver, default 1), HANDLERS
# (the source's handlers, default "forward"; '"payments", "forward"' applies each payment too),
# RATES (below), KIND (http, the default, or nats: the destination publishes into the
# JetStream stream BENCH of the machine's NATS on 4222, made afresh; the drain is then
# followed by a plain async-nats publisher of as many messages on the same broker, and the
# stream is checked to hold exactly one message per delivery),
# DRAIN_SQL (run before the drain), DB (postgres or mariadb), IDEMHOOK_BIN (the binary to
# measure, for interleaved pairs), SLOWLOG=1 (MariaDB: every statement's time, below).
# Each phase prints the machine's busy share and the CPU per event of idemhook, the database
# and the receiver; each paced phase the backlog every 2 s.
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
. bench/lib.sh
trap cleanup EXIT
# The server's own output (Rocket's critical lines, idemhook's errors) goes to the terminal.
SERVER_LOG_LEVEL=critical
SERVER_LOG=-
DBNAME=idemhook_forward_bench
# DB: postgres (default) or mariadb.
case ${DB:-postgres} in
  postgres)
    URL=$(fresh_db postgres "$DBNAME")
    sql() { psql -h 127.0.0.1 -U postgres -d "$DBNAME" -Atqc "$1"; }
    LATENCY_MS="extract(epoch FROM delivered_at - created_at) * 1000"
    DB_PROCS=postgres ;;
  mariadb)
    URL=$(fresh_db mariadb "$DBNAME")
    sql() { mysql -h127.0.0.1 -uroot -N -B "$DBNAME" -e "$1"; }
    LATENCY_MS="TIMESTAMPDIFF(MICROSECOND, created_at, delivered_at) / 1000"
    DB_PROCS=mariadbd ;;
  *) echo "DB must be postgres or mariadb" >&2; exit 2 ;;
esac
export FORWARD_SECRET="whsec_$(head -c 24 /dev/urandom | base64)"

config() { # poll_ms [worker: true|false]
  local source handlers=${HANDLERS:-'"forward"'}
  if [ "${KIND:-http}" = nats ]; then
    source=$(cat <<TOML
[default.idemhook.sources.demo]
handlers = [$handlers]
[default.idemhook.sources.demo.forward]
kind = "nats"
urls = ["nats://127.0.0.1:4222"]
subject = "bench.{source}.{type}"
stream = "BENCH"
concurrency = ${FORWARD_CONCURRENCY:-32}
TOML
    )
  else
    source=$(cat <<TOML
[default.idemhook.sources.demo]
handlers = [$handlers]
[default.idemhook.sources.demo.forward]
url = "http://127.0.0.1:8001/webhooks/app"
secret_env = "FORWARD_SECRET"
concurrency = ${FORWARD_CONCURRENCY:-32}
TOML
    )
  fi
  local n
  for n in $(seq 2 "${DESTINATIONS:-1}"); do
    source+=$(printf '\n[default.idemhook.sources.demo.destinations.d%s]\nurl = "http://127.0.0.1:8001/webhooks/app"\nsecret_env = "FORWARD_SECRET"\nconcurrency = %s' "$n" "${FORWARD_CONCURRENCY:-32}")
  done
  write_config "$URL" "$source" "forward_poll_ms = $1
forward_worker = ${2:-true}"
}
now() { date +%s.%N; }

# CPU accounting over a phase: the machine's busy share (/proc/stat) and the CPU seconds of
# idemhook, of every database server process and of the receiver (utime + stime), so a phase
# that falls behind can be told apart from a machine that is full.
ticks() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
cpu_mark() {
  CPU0=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
  DB0=$(ticks $(pgrep -x "$DB_PROCS")); APP0=$(ticks "$SERVER"); RCV0=$(ticks "$RECEIVER")
}
cpu_report() { # events
  local cpu1 db1 app1 rcv1
  cpu1=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
  db1=$(ticks $(pgrep -x "$DB_PROCS")); app1=$(ticks "$SERVER"); rcv1=$(ticks "$RECEIVER")
  python3 - "$CPU0" "$cpu1" "$((db1 - DB0))" "$((app1 - APP0))" "$((rcv1 - RCV0))" "$1" "$(getconf CLK_TCK)" <<'PY'
import sys
(t0, i0), (t1, i1) = (map(int, a.split()) for a in sys.argv[1:3])
db, app, rcv, n, hz = (int(a) for a in sys.argv[3:])
us = lambda t: t / hz * 1e6 / n
print(f"cpu: machine {100 * (1 - (i1 - i0) / (t1 - t0)):.0f}% busy; per event µs: idemhook {us(app):.0f}, "
      f"database {us(db):.0f}, receiver {us(rcv):.0f}")
PY
}
# MariaDB's own counters over a phase: row lock waits, index entries read, statements.
COUNTERS="'Innodb_row_lock_waits','Innodb_row_lock_time','Handler_read_next','Handler_read_key','Com_select','Com_update','Com_insert','Com_commit'"
counters() { [ "${DB:-postgres}" = mariadb ] && sql "SHOW GLOBAL STATUS WHERE Variable_name IN ($COUNTERS)" | tr '\t' '=' | tr '\n' ' '; }
counters_report() { # before after
  [ "${DB:-postgres}" = mariadb ] && python3 - "$1" "$2" <<'PY'
import sys
a, b = (dict(kv.split("=") for kv in s.split()) for s in sys.argv[1:3])
print("mariadb:", ", ".join(f"{k} +{int(b[k]) - int(a[k])}" for k in a))
PY
  return 0
}
# SLOWLOG=1 (MariaDB): every statement's server-side time during each paced phase, from the
# slow query log at long_query_time = 0, summed up by statement kind.
slowlog_on() {
  [ "${DB:-postgres}" = mariadb ] && [ -n "${SLOWLOG:-}" ] || return 0
  sql "SET GLOBAL slow_query_log = 0, long_query_time = 0, log_output = 'FILE', slow_query_log_file = '/tmp/idemhook-slow.log'"
  rm -f /tmp/idemhook-slow.log; sql "SET GLOBAL slow_query_log = 1"
}
slowlog_report() {
  [ "${DB:-postgres}" = mariadb ] && [ -n "${SLOWLOG:-}" ] || return 0
  sql "SET GLOBAL slow_query_log = 0, long_query_time = 10"
  python3 - /tmp/idemhook-slow.log <<'PY'
import re, sys, collections
kinds = collections.defaultdict(list)
t = None
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"# Query_time: ([0-9.]+)\s+Lock_time: ([0-9.]+)", line)
    if m:
        t = float(m.group(1)); continue
    if t is None or line.startswith(("#", "SET timestamp", "use ")):
        continue
    words = line.split()
    if not words:
        continue
    kind = " ".join(words[:3])[:40]
    if "FOR UPDATE" in line: kind = "SELECT ... FOR UPDATE (claim)"
    elif words[0].upper() == "UPDATE" and "`attempts` + 1" in line: kind = "UPDATE (claim)"
    elif words[0].upper() == "UPDATE" and "'delivered'" in line: kind = "UPDATE (delivered)"
    elif words[0].upper() == "SELECT" and "`payload`" in line and "lease_token" in line: kind = "SELECT (claimed rows)"
    kinds[kind].append(t); t = None
for kind, ts in sorted(kinds.items(), key=lambda kv: -sum(kv[1])):
    ts.sort()
    print(f"  {kind:42} n={len(ts):6} total {sum(ts):7.2f} s  mean {1000 * sum(ts) / len(ts):6.2f} ms  p99 {1000 * ts[int(len(ts) * 0.99)]:7.2f} ms")
PY
}
# The backlog every 0.5 s while a phase runs, in the background: `seconds pending`.
watch_backlog() { (T=$(now); while :; do echo "$(python3 -c "print(f'{$(now) - $T:.1f}')") $(sql "SELECT count(*) FROM deliveries WHERE status = 'pending'")"; sleep 0.5; done) > "$WORK/backlog" 2>/dev/null & WATCHER=$!; }

[ "${KIND:-http}" = nats ] && "$BENCH" nats reset
echo "== ingest $EVENTS new events at $CONNS connections (an ingest-only instance: no worker)"
config 60000 false
launch_idemhook "$BIN" error
"$BENCH" http --url http://127.0.0.1:8000 --source demo -c "$CONNS" --events "$EVENTS" --no-check --label ingest --json "$WORK/ingest.json" | tail -n 3
stop_server
DELIVERIES=$(sql "SELECT count(*) FROM deliveries WHERE status = 'pending'")
echo "pending: $DELIVERIES (${DESTINATIONS:-1} destination(s) per event)"

# DRAIN_SQL: statements to run before the drain (to compare index sets on one binary).
[ -n "${DRAIN_SQL:-}" ] && sql "$DRAIN_SQL" >/dev/null
if [ "${KIND:-http}" = nats ]; then
  echo "== drain the backlog into the NATS stream BENCH, ingestion idle"
  RECEIVER=$(pgrep -x nats-server | head -n 1)
else
  echo "== drain the backlog to a bare receiver, ingestion idle"
  start_baseline 8001
  RECEIVER=$BASELINE
fi
config 50 true
T0=$(now)
launch_idemhook "$BIN" error
cpu_mark
while [ "$(sql "SELECT count(*) FROM deliveries WHERE status = 'pending'")" != 0 ]; do sleep 0.2; done
T1=$(now)
python3 - "$T0" "$T1" "$DELIVERIES" <<'PY'
import sys
t0, t1, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"drained {n} deliveries in {t1 - t0:.1f} s (from launch): {n / (t1 - t0):,.0f} deliveries/s")
PY
cpu_report "$DELIVERIES"
echo "attempts: $(sql "SELECT sum(attempts), sum(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END) FROM deliveries")"
if [ "${KIND:-http}" = nats ]; then
  STORED=$("$BENCH" nats count)
  echo "the stream holds $STORED messages for $DELIVERIES deliveries"
  [ "$STORED" = "$DELIVERIES" ] || { echo "ERROR: not one message per delivery" >&2; exit 1; }
  echo "== the same number of messages from a plain async-nats publisher, the same broker"
  "$BENCH" nats publish --n "$DELIVERIES" --in-flight "${FORWARD_CONCURRENCY:-32}"
fi

HALF=$(python3 -c "import json; print(int(json.load(open('$WORK/ingest.json'))['throughput_per_sec'] / 2))")
# RATES: the paced rates to measure latency at ("half" = half the ingest rate above).
for RATE in ${RATES:-half}; do
  [ "$RATE" = half ] && RATE=$HALF
  echo "== latency, commit to delivered, events offered at $RATE/s for 20 s"
  sql "TRUNCATE deliveries" >/dev/null
  cpu_mark
  C0=$(counters || true)
  slowlog_on
  watch_backlog
  "$BENCH" http --url http://127.0.0.1:8000 --source demo -c "$CONNS" --duration 20 --rate "$RATE" --no-check --label "rate$RATE" | tail -n 3
  cpu_report "$(sql "SELECT count(*) FROM deliveries")"
  counters_report "$C0" "$(counters || true)"
  slowlog_report
  while [ "$(sql "SELECT count(*) FROM deliveries WHERE status = 'pending'")" != 0 ]; do sleep 0.2; done
  kill "$WATCHER" 2>/dev/null || true
  echo "backlog (s pending), every 2 s: $(awk 'NR % 4 == 1 {printf "%s:%s ", $1, $2}' "$WORK/backlog")"
  sql "SELECT $LATENCY_MS FROM deliveries" | python3 -c '
import statistics, sys
ms = sorted(float(line) for line in sys.stdin if line.strip())
q = statistics.quantiles(ms, n=100, method="inclusive")
print(f"{len(ms)} delivered; latency ms p50 {q[49]:.1f}, p90 {q[89]:.1f}, p99 {q[98]:.1f}, max {ms[-1]:.1f}")'

done
