# Shared by the interleaved-pairs scripts (pairs.sh, cpu.sh): a fresh database, and a server
# (idemhook or the bench tool's bare Rocket route) started, waited for and stopped on
# 127.0.0.1:8000. Source it after setting WORK (a scratch directory) and BENCH (the bench
# tool); `start_*` set SERVER, which the caller's exit trap kills if a run is cut short.

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

# Starts idemhook binary $1 on database URL $2 with the `payments` handler on source `bench`,
# RUST_LOG $3 (`default`: unset, idemhook's own default), and waits until it is ready.
start_idemhook() {
  cat > "$WORK/Rocket.toml" <<TOML
[default]
log_level = "off"
[default.idemhook]
database_url = "$2"
[default.idemhook.sources.bench]
handlers = ["payments"]
TOML
  if [ "$3" = default ]; then
    ( cd "$WORK" && unset RUST_LOG && ROCKET_CONFIG="$WORK/Rocket.toml" exec "$1" ) > "$WORK/server.log" 2>&1 &
  else
    ( cd "$WORK" && RUST_LOG=$3 ROCKET_CONFIG="$WORK/Rocket.toml" exec "$1" ) > "$WORK/server.log" 2>&1 &
  fi
  SERVER=$!
  await_server /health/ready
}

# Starts the bench tool's bare Rocket route, the baseline a duplicate is held to.
start_rocket() {
  "$BENCH" baseline-server --port 8000 > "$WORK/server.log" 2>&1 &
  SERVER=$!
  await_server / any
}

# Waits until path $1 answers 200 (with $2 = `any`: answers at all).
await_server() {
  local code
  for _ in $(seq 1 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:8000$1" || true)
    case $code in 200) return ;; 000) ;; *) [ "${2:-}" = any ] && return ;; esac
    sleep 0.1
  done
  echo "the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1
}

stop_server() {
  kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null || true
  SERVER=
}
