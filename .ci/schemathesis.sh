#!/usr/bin/env bash
# schemathesis (PyPI) against the real binary, on each database URL given: no 5xx, and every
# answer (status, content type, body) as /openapi.json documents it. Bounded: a fixed number
# of examples per operation, a fixed seed, one worker, and a hard timeout.
#
#   .ci/schemathesis.sh <idemhook binary> <database url>...
set -euo pipefail
BIN=$(realpath "$1"); shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/target/schemathesis-venv"
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-40}
if [ ! -x "$VENV/bin/st" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'schemathesis==4.32.5'
fi

TOKEN=schemathesis-admin-token
status=0
for url in "$@"; do
  work=$(mktemp -d)
  cp "$ROOT/Rocket.toml" "$work/"
  # A pull destination whose consumer token is the admin token, so that schemathesis's one
  # Authorization header reaches past the pull routes' 401 (.ci/schemathesis.toml names it
  # and pins wait_secs to 0: a long poll per example would not fit CI's budget).
  cat >>"$work/Rocket.toml" <<'TOML'
[default.idemhook.sources.pulled]
handlers = ["forward"]
[default.idemhook.sources.pulled.destinations.warehouse]
kind = "pull"
token_env = "SCHEMATHESIS_PULL_TOKEN"
TOML
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  (cd "$work" && DATABASE_URL="$url" IDEMHOOK_ADMIN_TOKEN=$TOKEN SCHEMATHESIS_PULL_TOKEN=$TOKEN ROCKET_PORT=$port \
    ROCKET_LOG_LEVEL=critical RUST_LOG=warn exec "$BIN" serve >"$work/server.log" 2>&1) &
  pid=$!
  base="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do curl -sf "$base/health/ready" >/dev/null && break; sleep 0.2; done
  # An event to find, replay and look up (the config file names it).
  curl -sf -X POST "$base/webhooks/demo" \
    -d '{"id":"e1","type":"payment_succeeded","data":{"order_id":"o1","amount":5,"currency":"eur"}}' >/dev/null
  # Deliveries for the pull routes to lease.
  for i in 1 2 3; do
    curl -sf -X POST "$base/webhooks/pulled" -d "{\"id\":\"p$i\",\"type\":\"t\"}" >/dev/null
  done
  run() {
    (cd "$work" && timeout 300 "$VENV/bin/st" "$@" run "$base/openapi.json" \
      -H "Authorization: Bearer $TOKEN" \
      -c not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
      -n "$EXAMPLES" --seed 1 -w 1 --generation-database none --no-color)
  }
  echo "--- schemathesis on $(echo "$url" | sed -E 's#//[^@/]*@#//#'): generated parameters"
  run || status=1
  echo "--- the same, with a real event's key (.ci/schemathesis.toml)"
  run --config-file "$ROOT/.ci/schemathesis.toml" || status=1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if [ $status -ne 0 ]; then echo "server log:"; tail -50 "$work/server.log"; fi
  rm -rf "$work"
done
exit $status
