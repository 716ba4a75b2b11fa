#!/usr/bin/env bash
# New events: idemhook against the database's own client running idemhook's per-event
# statements (PostgreSQL: bench/limit/event-postgres.sql under `pgbench -M prepared`; MariaDB:
# bench/limit/event-mariadb.lua under sysbench), in interleaved pairs (client, idemhook,
# client, idemhook, …), each run on a freshly migrated database. Prints every pair's
# idemhook ÷ client ratio and, per concurrency, the median and min–max.
#
# Usage: bench/limit.sh [pairs (5)] [seconds per run (8)] [concurrencies ("16 64")] [postgres|mariadb]
# Needs: the release binaries (cargo build --release -p idemhook -p idemhook-bench), pgbench
# (Debian's postgresql-client) or sysbench (Debian's sysbench), the servers as on the
# developers' machines. IDEMHOOK_BIN picks another idemhook binary (default
# target/release/idemhook), to compare two trees against the same client.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-5}
SECS=${2:-8}
CONCS=${3:-16 64}
DB=${4:-postgres}
BIN=$(realpath "${IDEMHOOK_BIN:-target/release/idemhook}")
BENCH=$(realpath target/release/idemhook-bench)
OUT=${OUT:-bench/results/limit-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
WORK=$(mktemp -d)
. bench/lib.sh
trap cleanup EXIT
case $DB in
  postgres) CLIENT=pgbench ;;
  mariadb) CLIENT=sysbench ;;
  *) echo "database: postgres or mariadb" >&2; exit 2 ;;
esac
# Without the client every pair would print nothing: say so instead.
command -v "$CLIENT" >/dev/null || { echo "$CLIENT is not on PATH (Debian: postgresql-client has pgbench; sysbench is its own package)" >&2; exit 2; }

# A freshly migrated idemhook_limit; on PostgreSQL, checkpointed.
fresh() {
  fresh_db "$DB" idemhook_limit >/dev/null
  ( cd "$WORK" && ROCKET_CONFIG="$WORK/Rocket.toml" "$BIN" migrate up >/dev/null )
  if [ "$DB" = postgres ]; then psql -h 127.0.0.1 -U postgres -d idemhook_limit -qc "CHECKPOINT"; fi
}

client_run() { # concurrency -> transactions (events) per second
  fresh
  if [ "$DB" = postgres ]; then
    pgbench -h 127.0.0.1 -U postgres -n -M prepared -c "$1" -j 2 -T "$SECS" \
      -f bench/limit/event-postgres.sql idemhook_limit 2>/dev/null |
      awk '/^tps = / { printf "%d\n", $3 }'
  else
    sysbench bench/limit/event-mariadb.lua --db-driver=mysql --mysql-host=127.0.0.1 \
      --mysql-port=3306 --mysql-user=root --mysql-db=idemhook_limit --threads="$1" \
      --time="$SECS" run 2>/dev/null | awk '/transactions:/ { gsub(/\(/, "", $3); printf "%d\n", $3 }'
  fi
}

idemhook_run() { # concurrency, tag -> new events per second
  fresh
  launch_idemhook "$BIN" "${RUST_LOG:-warn}"
  "$BENCH" http --url http://127.0.0.1:8000 --source bench -c "$1" --duration "$SECS" \
    --duplicates 0 --label "$2" --json "$OUT/$2.json" >/dev/null
  stop_server
  python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["throughput_per_sec"]))' "$OUT/$2.json"
}

URL=$(fresh_db "$DB" idemhook_limit)
write_config "$URL" '[default.idemhook.sources.bench]
handlers = ["inbox", "payments"]'
echo "pair conc client_tps idemhook_per_s ratio" | tee "$OUT/pairs.txt"
for c in $CONCS; do
  for p in $(seq 1 "$PAIRS"); do
    a=$(client_run "$c")
    b=$(idemhook_run "$c" "idemhook-c$c-p$p")
    echo "$p $c $a $b $(python3 -c "print(f'{$b/$a:.2f}')")" | tee -a "$OUT/pairs.txt"
  done
done
python3 - "$OUT/pairs.txt" <<'PY' | tee "$OUT/summary.txt"
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
for c in sorted({r[1] for r in rows}, key=int):
    rs = [float(r[4]) for r in rows if r[1] == c]
    pg = [int(r[2]) for r in rows if r[1] == c]
    ih = [int(r[3]) for r in rows if r[1] == c]
    print(f"{c} connections: idemhook/client median {statistics.median(rs):.2f}x (min {min(rs):.2f}, max {max(rs):.2f}, {len(rs)} pairs); "
          f"client median {statistics.median(pg)} tps, idemhook median {statistics.median(ih)} new events/s")
PY
