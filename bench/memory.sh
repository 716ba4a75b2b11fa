#!/usr/bin/env bash
# Resident memory under a stream of unique events: starts a release idemhook on a fresh
# database, sends EVENTS (default 1,000,000) new events at concurrency 32, samples the
# server's RSS every 2 s, and prints start / peak / end. Memory must level off once the
# cache is full (cache_capacity entries), not grow with the number of events.
#
# Usage: bench/memory.sh [events] [postgres|mariadb|sqlite]
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
DB=${2:-postgres}
cargo build --release -q -p idemhook -p idemhook-bench
WORK=$(mktemp -d)
. bench/lib.sh
trap cleanup EXIT
URL=$(fresh_db "$DB" idemhook_mem)
write_config "$URL" '[default.idemhook.sources.bench]
handlers = ["inbox", "payments"]'
launch_idemhook target/release/idemhook warn
rss() { awk '/VmRSS/ {print $2}' "/proc/$SERVER/status"; }
OUT=bench/results/memory-$DB-$(date -u +%Y%m%dT%H%M%SZ).csv
mkdir -p bench/results
echo "seconds,rss_kib,processed,cache_entries" > "$OUT"
START=$(rss)
( t=0; while kill -0 "$SERVER" 2>/dev/null; do
    m=$(curl -s "http://127.0.0.1:$SERVER_PORT/metrics" || true)
    p=$(echo "$m" | awk '/^idemhook_events_processed_total\{source="bench"\}/ {print $2}')
    c=$(echo "$m" | awk '/^idemhook_cache_entries / {print $2}')
    echo "$t,$(rss),${p:-0},${c:-0}" >> "$OUT"; sleep 2; t=$((t+2)); done ) &
SAMPLER=$!
target/release/idemhook-bench http --source bench -c 32 --events "$EVENTS" --duplicates 0
kill $SAMPLER 2>/dev/null || true
END=$(rss)
PEAK=$(awk -F, 'NR>1 && $2>m {m=$2} END {print m}' "$OUT")
echo "RSS start ${START} KiB, peak ${PEAK} KiB, end ${END} KiB; samples in $OUT"
awk -F, 'NR>1 && NR%15==0 {printf "  t=%ss rss=%s KiB processed=%s cache=%s\n", $1, $2, $3, $4}' "$OUT"
