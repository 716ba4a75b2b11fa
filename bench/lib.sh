# Shared by every bench script: a fresh database, idemhook's Rocket.toml, and a server
# (idemhook, or the bench tool's bare Rocket route) started, waited for and stopped. Source it
# after setting WORK (a scratch directory) and, for the bare route, BENCH (the bench tool),
# then `trap cleanup EXIT`.
#
# `start_*` and `launch_idemhook` set SERVER; `start_baseline` and the caller add the other
# processes that live until the end (receivers) to HELPERS; `cleanup` kills them all and
# removes WORK, so a run cut short leaves nothing behind.

# Where the server under test listens, how much Rocket logs, and where the server's output
# goes (`-`: the script's own output). A script that wants another sets it after sourcing.
SERVER_PORT=8000
SERVER_LOG_LEVEL=off
SERVER_LOG=$WORK/server.log
SERVER=
HELPERS=()

# The source the pairs measure: `bench`, the payments handler alone.
BENCH_SOURCE='[default.idemhook.sources.bench]
handlers = ["payments"]'

# Drops and creates database $2 on server kind $1 (sqlite|postgres|mariadb); prints its URL.
fresh_db() {
  case $1 in
    sqlite) rm -f "$WORK/$2.db"*; echo "sqlite://$WORK/$2.db?mode=rwc" ;;
    postgres) psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $2 WITH (FORCE)" -qc "CREATE DATABASE $2" >&2
              echo "postgres://postgres@127.0.0.1:5432/$2" ;;
    mariadb) mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS $2; CREATE DATABASE $2" >&2
             echo "mysql://root@127.0.0.1:3306/$2" ;;
    *) echo "database: sqlite, postgres or mariadb" >&2; exit 2 ;;
  esac
}

# Writes $WORK/Rocket.toml: Rocket on SERVER_PORT, logging at SERVER_LOG_LEVEL; idemhook on
# database URL $1, with the keys $3 (more `[default.idemhook]` keys, one a line) and the
# sources' tables $2 (default $BENCH_SOURCE); then the tables $4 (e.g. `[default.limits]`).
write_config() {
  cat > "$WORK/Rocket.toml" <<TOML
[default]
log_level = "$SERVER_LOG_LEVEL"
port = $SERVER_PORT
[default.idemhook]
database_url = "$1"
${3:-}
${2:-$BENCH_SOURCE}
${4:-}
TOML
}

# Starts idemhook binary $1 in WORK on $WORK/Rocket.toml with RUST_LOG $2 (`default`: unset,
# idemhook's own default) and the environment NAME=VALUE $3…, its output to SERVER_LOG, and
# waits until it is ready.
launch_idemhook() {
  local bin log=(RUST_LOG="$2")
  bin=$(realpath "$1")
  [ "$2" = default ] && log=(-u RUST_LOG)
  shift 2
  if [ "$SERVER_LOG" = - ]; then
    ( cd "$WORK" && exec env "${log[@]}" ROCKET_CONFIG="$WORK/Rocket.toml" "$@" "$bin" ) &
  else
    ( cd "$WORK" && exec env "${log[@]}" ROCKET_CONFIG="$WORK/Rocket.toml" "$@" "$bin" ) \
      > "$SERVER_LOG" 2>&1 &
  fi
  SERVER=$!
  await_http "http://127.0.0.1:$SERVER_PORT/health/ready" ready "$SERVER_LOG"
}

# Starts idemhook binary $1 on database URL $2 with the `bench` source, RUST_LOG $3 (see
# launch_idemhook), and waits until it is ready.
start_idemhook() {
  write_config "$2"
  launch_idemhook "$1" "$3"
}

# Starts the bench tool's bare Rocket route on SERVER_PORT, the baseline a duplicate is held
# to.
start_rocket() {
  "$BENCH" baseline-server --port "$SERVER_PORT" > "$WORK/server.log" 2>&1 &
  SERVER=$!
  await_http "http://127.0.0.1:$SERVER_PORT/" any "$WORK/server.log"
}

# Starts the bench tool's bare Rocket route on port $1 beside the server under test, left
# running until the end (a receiver of forwarded events, or the baseline of a whole matrix);
# sets BASELINE.
start_baseline() {
  "$BENCH" baseline-server --port "$1" > "$WORK/baseline-$1.log" 2>&1 &
  BASELINE=$!
  HELPERS+=("$BASELINE")
  await_http "http://127.0.0.1:$1/" any "$WORK/baseline-$1.log"
}

# Waits until URL $1 answers 200 (with $2 = `any`: answers at all); else shows log $3 and
# exits.
await_http() {
  local code
  for _ in $(seq 1 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)
    case $code in 200) return ;; 000) ;; *) [ "$2" = any ] && return ;; esac
    sleep 0.1
  done
  echo "no answer from $1:" >&2; [ -f "$3" ] && cat "$3" >&2; exit 1
}

stop_server() {
  kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null || true
  SERVER=
}

cleanup() {
  local p
  for p in "$SERVER" "${HELPERS[@]}"; do
    [ -n "$p" ] && { kill "$p" 2>/dev/null || true; }
  done
  # And whatever a script left running in the background (a backlog watcher on an error
  # exit kept polling the database through every later run).
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
