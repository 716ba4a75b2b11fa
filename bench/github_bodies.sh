#!/usr/bin/env bash
# Peak resident memory under GitHub-sized bodies: starts the given idemhook binary on a fresh
# SQLite database with a `github` source (signed, default limit: 25 MiB) that runs the inbox
# and forwards every event to a local receiver, then posts REQUESTS distinct push events of
# SIZE_MIB each, signed as GitHub signs them, over CONNECTIONS connections, and prints the
# answers' status counts, how many events the receiver got, and the server's peak RSS
# (VmHWM). FORWARD=0: the inbox alone, no forwarding. Extra `[default.idemhook]` keys (e.g. "inflight_budget_mib = 256") go in EXTRA.
#
# Usage: bench/github_bodies.sh BINARY [connections (64)] [requests (128)] [size MiB (25)]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "$1")
CONNECTIONS=${2:-64}
REQUESTS=${3:-128}
SIZE_MIB=${4:-25}
WORK=$(mktemp -d)
. bench/lib.sh
trap cleanup EXIT
SERVER_PORT=${PORT:-8000}
RECEIVER_PORT=$((SERVER_PORT + 1))
if [ "${FORWARD:-1}" = 1 ]; then
  HANDLERS=$(cat <<TOML
handlers = ["inbox", "forward"]
[default.idemhook.sources.github.forward]
url = "http://127.0.0.1:$RECEIVER_PORT/hook"
secret_env = "FWD_SECRET"
TOML
  )
else
  HANDLERS='handlers = ["inbox"]'
fi
SOURCE=$(cat <<TOML
[default.idemhook.sources.github]
provider = "github"
secret_env = "GH_SECRET"
$HANDLERS
TOML
)
write_config "$(fresh_db sqlite big)" "$SOURCE" "${EXTRA:-}"
python3 - "$RECEIVER_PORT" > "$WORK/receiver.log" 2>&1 <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200); self.end_headers()
        print("got", flush=True)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
HELPERS+=("$!")
launch_idemhook "$BIN" warn GH_SECRET=bench-secret FWD_SECRET=whsec_YmVuY2gtZm9yd2FyZC1zZWNyZXQ=
python3 - "$SERVER_PORT" "$CONNECTIONS" "$REQUESTS" "$SIZE_MIB" <<'PY'
import collections, concurrent.futures, hashlib, hmac, select, socket, sys
port, conns, n, size = (int(a) for a in sys.argv[1:])
commit = '{"id":"%040x","message":"%s","author":{"name":"Monalisa Octocat"},"modified":["README.md"]}'
line = "Fix the build. " * 64
def body(i):
    head = '{"ref":"refs/heads/main","after":"%040x","repository":{"full_name":"octocat/Hello-World"},"commits":[' % i
    one = commit % (i, line)
    k = (size * 1024 * 1024 - len(head) - 2) // (len(one) + 1)
    return (head + ",".join([one] * k) + "]}").encode()
def post(i):
    # A raw socket: the server may answer (413, 503) before it has read the body, and then
    # closes; the answer is still read.
    b = body(i)
    sig = "sha256=" + hmac.new(b"bench-secret", b, hashlib.sha256).hexdigest()
    head = ("POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n"
            "X-Hub-Signature-256: %s\r\nX-GitHub-Delivery: bench-%d\r\nX-GitHub-Event: push\r\n"
            "Connection: close\r\n\r\n" % (len(b), sig, i)).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=600)
    try:
        s.sendall(head)
        view = memoryview(b)
        for at in range(0, len(b), 1 << 20):
            if select.select([s], [], [], 0)[0]:
                break
            s.sendall(view[at:at + (1 << 20)])
    except OSError:
        pass
    answer = b""
    try:
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    except OSError:
        pass
    s.close()
    return answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/") else "closed"
with concurrent.futures.ThreadPoolExecutor(conns) as pool:
    print(dict(collections.Counter(pool.map(post, range(n)))), end=" ")
PY
for _ in $(seq 1 600); do
  [ "${FORWARD:-1}" = 1 ] || break
  [ "$(grep -c got "$WORK/receiver.log" || true)" -ge "$(sqlite3 "$WORK/big.db" 'select count(*) from processed_events' 2>/dev/null || echo 0)" ] && break
  sleep 0.5
done
PEAK=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
echo "$REQUESTS x $SIZE_MIB MiB at $CONNECTIONS connections: delivered $(grep -c got "$WORK/receiver.log" || true); peak RSS ${PEAK} KiB"
