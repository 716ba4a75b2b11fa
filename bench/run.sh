#!/usr/bin/env bash
# The standard benchmark matrix, on this machine, in one run:
#   for each of SQLite, PostgreSQL, MariaDB, at 16 and 64 connections:
#     db-limit, idemhook new-only, idemhook 50 % duplicates, bare Rocket, idemhook
#     duplicates-only (each ratio's pair back to back)
# Results go to bench/results/<timestamp>/ as JSON, and a table with the ratios is printed.
#
# Usage: bench/run.sh [seconds-per-run (default 10)] [databases (default "sqlite postgres mariadb")]
# Environment: PROVIDER=generic|stripe (how requests are signed), SHARDS (idemhook's `shards`,
# default 16).
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and MariaDB on 127.0.0.1:3306
# (root, no password) for those rows, as on the developers' machines.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
DBS=${2:-sqlite postgres mariadb}
PROVIDER=${PROVIDER:-generic}
SHARDS=${SHARDS:-16}
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
cargo build --release -q -p idemhook -p idemhook-bench
BIN=target/release
BENCH="$BIN/idemhook-bench"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

wait_http() { for _ in $(seq 1 300); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

fresh_db() { # name -> URL of an empty database
  case $1 in
    sqlite) rm -f "$WORK/bench.db"*; echo "sqlite://$WORK/bench.db?mode=rwc" ;;
    postgres) psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS idemhook_bench WITH (FORCE)" -qc "CREATE DATABASE idemhook_bench"
              echo "postgres://postgres@127.0.0.1:5432/idemhook_bench" ;;
    mariadb) mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS idemhook_bench; CREATE DATABASE idemhook_bench"
             echo "mysql://root@127.0.0.1:3306/idemhook_bench" ;;
  esac
}

# Bare Rocket runs for the whole matrix (idle between its cells) on port 8001.
"$BENCH" baseline-server --port 8001 & PIDS+=($!)
baseline_up=
for _ in $(seq 1 300); do # any answer will do (it has no GET route)
  curl -s -o /dev/null http://127.0.0.1:8001/ && { baseline_up=1; break; }
  sleep 0.1
done
[ -n "$baseline_up" ] || { echo "bare Rocket did not start on port 8001" >&2; exit 1; }

start_idemhook() { # database URL
  cat > "$WORK/Rocket.toml" <<TOML
[default]
log_level = "off"
[default.idemhook]
database_url = "$1"
shards = $SHARDS
log_format = "text"
[default.idemhook.sources.bench]
handlers = ["payments"]
[default.idemhook.sources.stripe]
provider = "stripe"
secret_env = "BENCH_SECRET"
handlers = ["payments"]
TOML
  ( cd "$WORK" && RUST_LOG=warn ROCKET_CONFIG="$WORK/Rocket.toml" BENCH_SECRET=whsec_bench exec "$OLDPWD/$BIN/idemhook" ) > "$WORK/server.log" 2>&1 &
  IDEMHOOK_PID=$!
  PIDS+=("$IDEMHOOK_PID")
  wait_http http://127.0.0.1:8000/health/ready
}

# Each ratio's two runs are taken back to back (db-limit right before new-only, bare Rocket
# right before duplicates-only): a shared 2-core VM drifts by 20 % and more within minutes.
for db in $DBS; do
  for c in 16 64; do
    echo "== db-limit $db c=$c"
    url=$(fresh_db "$db")
    "$BENCH" db-limit --database-url "$url" -c $c --duration "$SECS" --label "db-limit $db" --json "$OUT/dblimit-$db-c$c.json"
    for dup in 0 50 100; do
      if [ "$dup" = 100 ]; then
        echo "== bare Rocket (next to $db) c=$c"
        "$BENCH" http --url http://127.0.0.1:8001 --no-check -c $c --duration "$SECS" --duplicates 100 --pool 1 \
          --label "bare-rocket $db" --json "$OUT/baseline-$db-c$c.json"
      fi
      echo "== idemhook $db c=$c duplicates=$dup%"
      url=$(fresh_db "$db")
      start_idemhook "$url"
      src=bench; [ "$PROVIDER" = stripe ] && src=stripe
      BENCH_SECRET=whsec_bench "$BENCH" http --url http://127.0.0.1:8000 --source $src --provider "$PROVIDER" \
        -c $c --duration "$SECS" --duplicates $dup --label "idemhook $db" --json "$OUT/idemhook-$db-c$c-d$dup.json" || true
      kill -TERM "$IDEMHOOK_PID"; wait "$IDEMHOOK_PID" 2>/dev/null || true
    done
  done
done

echo
"$BENCH" summarize "$OUT" | tee "$OUT/summary.md"
