# What the examples' end-to-end checks share (sourced, not run): start idemhook on a
# configuration, and post a provider's retries.

# Starts the binary (IDEMHOOK_BIN, default the release build) in directory $1, which holds its
# Rocket.toml, and waits until it is ready on port $2.
start_idemhook() {
  local dir=$1 port=$2
  local bin
  bin=$(realpath "${IDEMHOOK_BIN:-target/release/idemhook}")
  (cd "$dir" && RUST_LOG=warn "$bin") &
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && return 0
    sleep 0.1
  done
  echo "idemhook did not get ready on port $port" >&2
  return 1
}

# Posts 20 events to source `shop` on port $1, each twice, as a provider retries: whatever
# consumes them must still apply each once.
post_twenty_twice() {
  local port=$1
  for i in $(seq 1 20); do
    for _ in 1 2; do
      curl -sf -X POST "http://127.0.0.1:$port/webhooks/shop" \
        -H 'Content-Type: application/json' -H "Webhook-Id: évt $i" \
        -d "{\"type\":\"order.paid\",\"n\":$i}" >/dev/null
    done
  done
}
