#!/usr/bin/env bash
# The forwarding example of docs/forwarding.md, end to end: the release binary forwards to
# examples/forward/receiver.py, which verifies every delivery with the Python
# `standardwebhooks` package and applies each event once. Exits non-zero unless all 20
# events are applied with valid signatures. Run from the repository root after
# `cargo build --release` (or set IDEMHOOK_BIN to another build, as CI does).
set -euo pipefail
. examples/lib.sh
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
start_idemhook "$DIR" "$HOOK_PORT"
post_twenty_twice "$HOOK_PORT"
wait "$RECEIVER"
