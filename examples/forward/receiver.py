#!/usr/bin/env python3
"""The user's app, as idemhook forwards to it: verify with a Standard Webhooks library,
apply each event once by its Idempotency-Key, answer 2xx.

    pip install standardwebhooks
    FORWARD_SECRET=whsec_... python3 examples/forward/receiver.py 9000

Every verified delivery is applied once: a redelivery (same Idempotency-Key) is answered
2xx and applied no more. A real app would keep the keys in its own database, in the same
transaction as the event's effects; this one keeps them in memory, and prints one line per
event applied.

With --expect N it exits 0 once N distinct events were applied, or 1 after --timeout
seconds or on any delivery that fails verification (.ci/run uses this).
"""

import argparse
import http.server
import os
import sys
import threading
import urllib.parse

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

applied = {}  # Idempotency-Key -> (source, type, id)
lock = threading.Lock()
failures = []
done = threading.Event()


def make_handler(webhook, expect):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            try:
                webhook.verify(body, dict(self.headers.items()))
            except WebhookVerificationError as e:
                failures.append(str(e))
                self.send_response(401)
                self.end_headers()
                done.set()
                return
            key = self.headers["idempotency-key"]
            part = lambda h: urllib.parse.unquote(self.headers[h])
            with lock:
                if key not in applied:
                    applied[key] = (part("idemhook-source"), part("idemhook-event-type"),
                                    part("idemhook-event-id"))
                    print("applied", key, *applied[key], flush=True)
                if expect and len(applied) >= expect:
                    done.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    webhook = Webhook(os.environ["FORWARD_SECRET"])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port),
                                             make_handler(webhook, args.expect))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if not args.expect:
        threading.Event().wait()
    done.wait(args.timeout)
    server.shutdown()
    if failures:
        print("verification failed:", failures, file=sys.stderr)
        sys.exit(1)
    if len(applied) < args.expect:
        print(f"only {len(applied)} of {args.expect} events applied", file=sys.stderr)
        sys.exit(1)
    print(f"{len(applied)} events applied, every signature verified")


if __name__ == "__main__":
    main()
