#!/usr/bin/env bash
# Peak resident memory under large bodies: starts the given idemhook binary on a fresh SQLite
# database (source `big`: the inbox and payments handlers, as the shipped demo source), and
# posts ~1 MiB events ({"id":…,"type":"big","pad":[0,0,…]}, an array of small numbers, the
# shape that costs a parsed serde_json::Value about 16 bytes per body byte) over CONNECTIONS
# connections, then prints the answers' status counts and the server's peak RSS (VmHWM).
#   new: REQUESTS distinct events (the hostile load of the hardening issue: 192 at 64);
#   dup: one event, then REQUESTS duplicates of it.
#
# Usage: bench/big_bodies.sh BINARY [new|dup (new)] [connections (64)] [requests (192)]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "$1")
MODE=${2:-new}
CONNECTIONS=${3:-64}
REQUESTS=${4:-192}
WORK=$(mktemp -d)
. bench/lib.sh
trap cleanup EXIT
python3 - "$WORK" "$MODE" "$REQUESTS" <<'PY'
import os, sys
work, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
pad = ",".join(["0"] * 500_000)
for i in range(n if mode == "new" else 1):
    open(os.path.join(work, f"body{i}.json"), "w").write(
        '{"id":"evt_big_%d","type":"big","pad":[%s]}' % (i, pad))
PY
# Rocket's `webhook` limit at 2 MiB, so that ~1 MiB bodies are read.
write_config "$(fresh_db sqlite big)" '[default.idemhook.sources.big]
handlers = ["inbox", "payments"]' '' '[default.limits]
webhook = "2 MiB"'
launch_idemhook "$BIN" warn
post() { curl -s -o /dev/null -w '%{http_code}\n' --data-binary @"$WORK/body$1.json" "http://127.0.0.1:$SERVER_PORT/webhooks/big"; }
export -f post; export WORK SERVER_PORT
if [ "$MODE" = dup ]; then
  [ "$(post 0)" = 200 ] || { echo "the first delivery was refused" >&2; exit 1; }
  seq 1 "$REQUESTS" | sed 's/.*/0/' | xargs -P "$CONNECTIONS" -I{} bash -c 'post {}' | sort | uniq -c | tr '\n' ' '
else
  seq 0 $((REQUESTS - 1)) | xargs -P "$CONNECTIONS" -I{} bash -c 'post {}' | sort | uniq -c | tr '\n' ' '
fi
PEAK=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
echo "mode $MODE, $REQUESTS requests at $CONNECTIONS connections; peak RSS ${PEAK} KiB"
