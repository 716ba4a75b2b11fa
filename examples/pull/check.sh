#!/usr/bin/env bash
# The pull example of docs/forwarding.md, end to end: the binary holds a source's events for
# a pull destination, and examples/pull/consumer.py (only `requests`) leases, applies each
# event once and acks. Exits non-zero unless all 20 events (each posted twice) are applied.
# Run from the repository root after `cargo build --release` (or set IDEMHOOK_BIN to another
# build, as CI does).
set -euo pipefail
. examples/lib.sh
python3 -c 'import requests' 2>/dev/null || pip install -q requests
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
PORT=$((20000 + RANDOM % 20000))
export PULL_TOKEN="pull-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat > "$DIR/Rocket.toml" <<TOML
[default]
port = $PORT
log_level = "critical"
[default.idemhook]
database_url = "sqlite://$DIR/idemhook.db?mode=rwc"
[default.idemhook.sources.shop]
handlers = ["forward"]
[default.idemhook.sources.shop.destinations.warehouse]
kind = "pull"
token_env = "PULL_TOKEN"
lease_secs = 30
TOML
start_idemhook "$DIR" "$PORT"
post_twenty_twice "$PORT"
python3 examples/pull/consumer.py "http://127.0.0.1:$PORT" shop warehouse --expect 20 --timeout 60
