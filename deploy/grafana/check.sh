#!/usr/bin/env bash
# Every query of the Grafana dashboard parses as PromQL: each becomes a recording rule of a
# throwaway file that `promtool check rules` reads.
set -euo pipefail
cd "$(dirname "$0")"
rules=$(mktemp --suffix=.yml)
trap 'rm -f "$rules"' EXIT
python3 - idemhook.json > "$rules" <<'PY'
import json, sys
dash = json.load(open(sys.argv[1]))
print("groups:\n  - name: dashboard\n    rules:")
for panel in dash["panels"]:
    for target in panel["targets"]:
        name = f"dashboard:panel_{panel['id']}_{target['refId']}"
        print(f"      - record: {name}\n        expr: {json.dumps(target['expr'])}")
PY
promtool check rules "$rules"
