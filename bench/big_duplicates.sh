#!/usr/bin/env bash
# Peak resident memory while duplicates of one large body arrive at once: starts the given
# idemhook binary on a fresh SQLite database, delivers a ~1 MiB event
# ({"id":…,"type":"big","pad":[0,0,…]}, an array of small numbers, the shape that costs a
# parsed serde_json::Value about 16 bytes per body byte) once, then REQUESTS duplicates of it
# over CONNECTIONS connections, and prints the server's peak RSS (VmHWM).
#
# Usage: bench/big_duplicates.sh BINARY [connections (64)] [requests (640)]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "$1")
CONNECTIONS=${2:-64}
REQUESTS=${3:-640}
WORK=$(mktemp -d)
cat > "$WORK/Rocket.toml" <<TOML
[default]
log_level = "off"
[default.limits]
webhook = "2 MiB"
[default.idemhook]
database_url = "sqlite://$WORK/big.db?mode=rwc"
[default.idemhook.sources.big]
handlers = ["inbox"]
TOML
python3 - "$WORK/body.json" <<'PY'
import sys
pad = ",".join(["0"] * 500_000)
open(sys.argv[1], "w").write('{"id":"evt_big","type":"big","pad":[' + pad + ']}')
PY
( cd "$WORK" && RUST_LOG=warn ROCKET_CONFIG="$WORK/Rocket.toml" exec "$BIN" ) > "$WORK/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8000/health/ready >/dev/null && break; sleep 0.1; done
post() { curl -s -o /dev/null -w '%{http_code}\n' --data-binary @"$WORK/body.json" http://127.0.0.1:8000/webhooks/big; }
first=$(post)
[ "$first" = 200 ] || { echo "first delivery answered $first" >&2; exit 1; }
BEFORE=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
export -f post; export WORK
seq 1 "$REQUESTS" | xargs -P "$CONNECTIONS" -I{} bash -c post | sort | uniq -c | tr '\n' ' '
PEAK=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
echo "body $(stat -c %s "$WORK/body.json") bytes; peak RSS before the duplicates ${BEFORE} KiB, after ${PEAK} KiB"
