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
. bench/lib.sh
trap cleanup EXIT

# Bare Rocket runs for the whole matrix (idle between its cells) on port 8001.
start_baseline 8001

# idemhook's configuration in every cell: the `bench` source, and `stripe` (signed with
# BENCH_SECRET) for PROVIDER=stripe.
MATRIX_SOURCES=$(cat <<TOML
$BENCH_SOURCE
[default.idemhook.sources.stripe]
provider = "stripe"
secret_env = "BENCH_SECRET"
handlers = ["payments"]
TOML
)
MATRIX_KEYS=$(printf 'shards = %s\nlog_format = "text"' "$SHARDS")

# Each ratio's two runs are taken back to back (db-limit right before new-only, bare Rocket
# right before duplicates-only): a shared 2-core VM drifts by 20 % and more within minutes.
for db in $DBS; do
  for c in 16 64; do
    echo "== db-limit $db c=$c"
    url=$(fresh_db "$db" idemhook_bench)
    "$BENCH" db-limit --database-url "$url" -c $c --duration "$SECS" --label "db-limit $db" --json "$OUT/dblimit-$db-c$c.json"
    for dup in 0 50 100; do
      if [ "$dup" = 100 ]; then
        echo "== bare Rocket (next to $db) c=$c"
        "$BENCH" http --url http://127.0.0.1:8001 --no-check -c $c --duration "$SECS" --duplicates 100 --pool 1 \
          --label "bare-rocket $db" --json "$OUT/baseline-$db-c$c.json"
      fi
      echo "== idemhook $db c=$c duplicates=$dup%"
      url=$(fresh_db "$db" idemhook_bench)
      write_config "$url" "$MATRIX_SOURCES" "$MATRIX_KEYS"
      launch_idemhook "$BIN/idemhook" warn BENCH_SECRET=whsec_bench
      src=bench; [ "$PROVIDER" = stripe ] && src=stripe
      BENCH_SECRET=whsec_bench "$BENCH" http --url http://127.0.0.1:8000 --source $src --provider "$PROVIDER" \
        -c $c --duration "$SECS" --duplicates $dup --label "idemhook $db" --json "$OUT/idemhook-$db-c$c-d$dup.json" || true
      stop_server
    done
  done
done

echo
"$BENCH" summarize "$OUT" | tee "$OUT/summary.md"
