#!/usr/bin/env bash
# GET /events on 10 M rows: create a database, migrate it with idemhook, seed it, print the
# plans of the statements the list sends (BENCHMARKS.md, "GET /events on 10 million rows").
#
# Usage: IDEMHOOK_BIN=target/debug/idemhook bench/search/run.sh postgres|mariadb [rows]
# Environment:
#   IDEMHOOK_BIN  the idemhook binary (required)
#   DB            database name (default idemhook_bench_search); dropped and re-created
#   API=1         also start idemhook on it (port 8199) and time 20 requests per case
#   DROP=1        drop the database at the end
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) or MariaDB on 127.0.0.1:3306
# (root, no password). Seeding 10 M rows takes about 4 minutes on 2 cores, and 5 GB of disk.
# Run one database at a time.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KIND=${1:?postgres or mariadb}
ROWS=${2:-10000000}
DB=${DB:-idemhook_bench_search}
BIN=$(realpath "${IDEMHOOK_BIN:?set IDEMHOOK_BIN to the idemhook binary}")
WORK=$(mktemp -d)
. "$HERE/../lib.sh"
trap cleanup EXIT
# The shipped configuration; the server (API=1) on port 8199.
cp "$HERE/../../Rocket.toml" "$WORK/"
SERVER_PORT=8199

case $KIND in
  postgres)
    URL=$(fresh_db postgres "$DB")
    seed() { psql -X -h 127.0.0.1 -U postgres -d "$DB" -v ON_ERROR_STOP=1 -v rows="$ROWS" -f "$HERE/seed-postgres.sql"; }
    plans() { psql -X -h 127.0.0.1 -U postgres -d "$DB" -v ON_ERROR_STOP=1 -f "$HERE/plans-postgres.sql"; }
    t_end() { psql -X -h 127.0.0.1 -U postgres -d "$DB" -Atc "SELECT to_char(max(processed_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM processed_events"; }
    dropdb() { psql -X -h 127.0.0.1 -U postgres -qc "DROP DATABASE $DB WITH (FORCE)"; } ;;
  mariadb)
    URL=$(fresh_db mariadb "$DB")
    seed() { { echo "SET @rows = $ROWS;"; cat "$HERE/seed-mariadb.sql"; } | mysql -h127.0.0.1 -uroot -t "$DB"; }
    plans() { mysql -h127.0.0.1 -uroot --raw "$DB" < "$HERE/plans-mariadb.sql"; }
    t_end() { mysql -h127.0.0.1 -uroot -N "$DB" -e "SELECT DATE_FORMAT(MAX(processed_at), '%Y-%m-%dT%H:%i:%sZ') FROM processed_events"; }
    dropdb() { mysql -h127.0.0.1 -uroot -e "DROP DATABASE $DB"; } ;;
  *) echo "unknown database: $KIND" >&2; exit 2 ;;
esac

(cd "$WORK" && DATABASE_URL=$URL "$BIN" migrate up && DATABASE_URL=$URL "$BIN" migrate status)
start=$(date +%s); seed; echo "seeded in $(( $(date +%s) - start )) s"
plans

if [ "${API:-}" = 1 ]; then
  END=$(t_end)
  at() { date -u -d "@$(( $(date -u -d "$END" +%s) + $1 ))" +%Y-%m-%dT%H:%M:%SZ; }  # END + $1 s
  launch_idemhook "$BIN" "${RUST_LOG:-default}" DATABASE_URL="$URL" IDEMHOOK_ADMIN_TOKEN=t \
    ROCKET_PORT="$SERVER_PORT"
  get() { curl -s -o "$WORK/page.json" -w '%{time_total}\n' -H 'Authorization: Bearer t' "http://127.0.0.1:$SERVER_PORT/events?$1"; }
  get "until=$(at -1296000)&limit=1" >/dev/null  # a real next_cursor, 15 days back
  CURSOR=$(python3 -c "import json; print(json.load(open('$WORK/page.json'))['next_cursor'])")
  while IFS='|' read -r name query; do
    for _ in $(seq 20); do get "$query"; done | python3 -c "import sys, statistics as s
v = [float(x) * 1000 for x in sys.stdin.read().split()]
print('%-3s median %7.1f ms  max %7.1f ms  %s' % ('$name', s.median(v), max(v), '$query'[:60]))"
  done <<EOF
a|
b|status=rejected
c|source=stripe&status=processed
d|cursor=$CURSOR
e|since=$(at -864000)&until=$(at -860400)
f|status=dead
g|type=event.type_07
i|status=failed&source=stripe
EOF
  stop_server
fi

if [ "${DROP:-}" = 1 ]; then dropdb; echo "dropped $DB"; fi
