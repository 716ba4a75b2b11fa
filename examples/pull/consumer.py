#!/usr/bin/env python3
"""A consumer of an idemhook `pull` destination (docs/forwarding.md, "Pulling deliveries").

It needs nothing but `requests`: it long-polls for leased deliveries, applies each event once
(keyed by its Idempotency-Key, in the same SQLite transaction as its effect), and acks them.
A delivery it cannot apply is nacked, to come back later; one it dies on is leased again once
its lease runs out, and applying it again changes nothing.

    consumer.py <base url> <source> <destination> [--expect N] [--timeout S]

The token is read from PULL_TOKEN. With --expect, it exits 0 once N distinct events are
applied, 1 if the timeout comes first.
"""
import argparse
import json
import os
import sqlite3
import sys
import time

import requests


def apply(db, delivery):
    """Applies the event once: its key and its effect commit together, or neither."""
    body = delivery.get("body")
    if body is None:  # not UTF-8: the bytes are in body_base64
        body = delivery["body_base64"]
    with db:  # one transaction
        seen = db.execute(
            "INSERT OR IGNORE INTO applied (key, event_id, body) VALUES (?, ?, ?)",
            (delivery["idempotency_key"], delivery["event_id"], body),
        )
        return seen.rowcount == 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("source")
    parser.add_argument("destination")
    parser.add_argument("--expect", type=int)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    url = f"{args.base}/pull/{args.source}/{args.destination}"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {os.environ['PULL_TOKEN']}"
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE applied (key TEXT PRIMARY KEY, event_id TEXT, body TEXT)")
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        answer = session.post(f"{url}/lease", params={"max": 50, "wait_secs": 5}, timeout=40)
        answer.raise_for_status()
        deliveries = answer.json()["deliveries"]
        done, failed = [], []
        for delivery in deliveries:
            try:
                if apply(db, delivery):
                    print(f"applied {delivery['event_id']} (attempt {delivery['attempt']})")
                done.append(delivery["lease_token"])
            except Exception as error:  # noqa: BLE001 - any failure: give it back
                print(f"cannot apply {delivery['event_id']}: {error}", file=sys.stderr)
                failed.append(delivery["lease_token"])
        if done:
            acked = session.post(f"{url}/ack", json={"lease_tokens": done}, timeout=10).json()
            for token in acked["stale"]:
                # The lease ran out first: another consumer may have it; our effect is
                # already keyed, so its second application will change nothing.
                print(f"stale: {token}", file=sys.stderr)
        if failed:
            session.post(f"{url}/nack", json={"lease_tokens": failed, "delay_secs": 5}, timeout=10)
        applied = db.execute("SELECT COUNT(*) FROM applied").fetchone()[0]
        if args.expect is not None and applied >= args.expect:
            print(json.dumps({"applied": applied}))
            return 0
    print(f"timeout: {db.execute('SELECT COUNT(*) FROM applied').fetchone()[0]} applied", file=sys.stderr)
    return 1 if args.expect is not None else 0


if __name__ == "__main__":
    sys.exit(main())
