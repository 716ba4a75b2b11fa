#!/usr/bin/env bash
# The forwarding example of docs/forwarding.md, end to end: the release binary forwards to
# examples/forward/receiver.py, which verifies every delivery with the Python
# `standardwebhooks` package and applies each event once. Exits non-zero unless all 20
# events are applied with valid signatures. Run from the repository root after
# `cargo build --release` (or set IDEMHOOK_BIN to another build, as CI does).
set -euo pipefail
python3 -c 'import standardwebhooks' 2>/dev/null || pip install -q standardwebhooks
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
APP_PORT=$((20000 + RANDOM % 20000))
HOOK_PORT=$((APP_PORT + 1))
export FORWARD_SECRET="whsec_$(head -c 24 /dev/urandom | base64)"
cat > "$DIR/Rocket.toml" <<TOML
[default]
port = $HOOK_PORT
log_level = "critical"
[default.idemhook]
database_url = "sqlite://$DIR/idemhook.db?mode=rwc"
forward_poll_ms = 50
[default.idemhook.sources.shop]
handlers = ["inbox", "forward"]
[default.idemhook.sources.shop.forward]
url = "http://127.0.0.1:$APP_PORT/hooks"
secret_env = "FORWARD_SECRET"
TOML
python3 examples/forward/receiver.py "$APP_PORT" --expect 20 --timeout 60 &
RECEIVER=$!
BIN=$(realpath "${IDEMHOOK_BIN:-target/release/idemhook}")
(cd "$DIR" && RUST_LOG=warn "$BIN") &
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$HOOK_PORT/health/ready" >/dev/null && break
  sleep 0.1
done
for i in $(seq 1 20); do
  # Each event twice, as a provider retries: the app still applies it once.
  for _ in 1 2; do
    curl -sf -X POST "http://127.0.0.1:$HOOK_PORT/webhooks/shop" \
      -H 'Content-Type: application/json' -H "Webhook-Id: évt $i" \
      -d "{\"type\":\"order.paid\",\"n\":$i}" >/dev/null
  done
done
wait "$RECEIVER"
