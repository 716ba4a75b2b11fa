#!/usr/bin/env bash
# A three-node MariaDB Galera cluster on loopback, for tests and experiments.
#
#   scripts/galera.sh start          bootstrap node 1, join nodes 2 and 3 (about 30 s)
#   scripts/galera.sh stop           stop all nodes and delete their data
#   scripts/galera.sh kill N         SIGKILL node N (a crash)
#   scripts/galera.sh restart N      start node N again; it rejoins (IST/SST from a peer)
#   scripts/galera.sh status         cluster size as each node sees it
#
# Node N listens on 127.0.0.1:33N6 for SQL (3316, 3326, 3336: clear of the usual 3306),
# 45N7 for group communication, 45N8 for IST and 45N9 for SST; its files live in
# $GALERA_DIR/nodeN (default /tmp/idemhook-galera). root@127.0.0.1 has no password.
# Needs Debian's mariadb-server (which brings galera-4) and rsync; installs them if missing.
set -euo pipefail
DIR=${GALERA_DIR:-/tmp/idemhook-galera}
PROVIDER=/usr/lib/galera/libgalera_smm.so
CLUSTER="gcomm://127.0.0.1:4517,127.0.0.1:4527,127.0.0.1:4537"

need() {
  if [ ! -e "$PROVIDER" ] || ! command -v rsync >/dev/null || ! command -v mariadb-install-db >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server galera-4 rsync >/dev/null
  fi
}

port() { echo "33${1}6"; }
sock() { echo "$DIR/node$1/mysqld.sock"; }
sql() { local n=$1; shift; mariadb --no-defaults -uroot -S "$(sock "$n")" -N -B -e "$*"; }

config() {
  local n=$1
  cat > "$DIR/node$n.cnf" <<CNF
[mysqld]
user=mysql
datadir=$DIR/node$n/data
socket=$(sock "$n")
pid-file=$DIR/node$n/mysqld.pid
log-error=$DIR/node$n/error.log
port=$(port "$n")
bind-address=127.0.0.1
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
innodb_flush_log_at_trx_commit=2
max_connections=300
wsrep_on=ON
wsrep_provider=$PROVIDER
wsrep_cluster_name=idemhook
wsrep_cluster_address=$CLUSTER
wsrep_node_address=127.0.0.1:45${n}7
wsrep_node_name=node$n
wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:45${n}7;ist.recv_addr=127.0.0.1:45${n}8;gcache.size=64M"
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:45${n}9
CNF
}

launch() { # n [extra args]
  local n=$1; shift
  # The server runs as mysql, not root: the rsync state transfer then reads and writes as
  # mysql on both sides (as root, rsync's daemon would drop to nobody and fail).
  mkdir -p "$DIR/node$n/data"
  chown -R mysql:mysql "$DIR/node$n"
  [ -f "$DIR/node$n.cnf" ] || config "$n"
  start-stop-daemon --start --background --make-pidfile --pidfile "$DIR/node$n/daemon.pid" \
    --exec /usr/sbin/mariadbd -- --defaults-file="$DIR/node$n.cnf" "$@"
}

wait_synced() { # n
  local n=$1
  for _ in $(seq 1 120); do
    if [ "$(sql "$n" "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2)" = "Synced" ]; then return 0; fi
    sleep 0.5
  done
  echo "node $n did not reach Synced; see $DIR/node$n/error.log" >&2
  tail -n 30 "$DIR/node$n/error.log" >&2 || true
  return 1
}

cmd=${1:-status}
case $cmd in
  start)
    need
    "$0" stop >/dev/null 2>&1 || true
    mkdir -p "$DIR/node1"
    chmod 755 "$DIR"
    config 1; config 2; config 3
    chown mysql:mysql "$DIR/node1"
    mariadb-install-db --no-defaults --user=mysql --datadir="$DIR/node1/data" \
      --auth-root-authentication-method=normal --skip-test-db >/dev/null
    launch 1 --wsrep-new-cluster
    wait_synced 1
    sql 1 "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES"
    for n in 2 3; do launch "$n"; done
    wait_synced 2; wait_synced 3
    echo "galera: 3 nodes synced on 127.0.0.1:3316, :3326, :3336 (cluster size $(sql 1 "SHOW STATUS LIKE 'wsrep_cluster_size'" | cut -f2))"
    ;;
  stop)
    for n in 1 2 3; do
      [ -f "$DIR/node$n/daemon.pid" ] && kill -9 "$(cat "$DIR/node$n/daemon.pid")" 2>/dev/null || true
    done
    sleep 1
    rm -rf "$DIR"
    ;;
  kill)
    n=${2:?node number}
    kill -9 "$(cat "$DIR/node$n/daemon.pid")"
    ;;
  restart)
    n=${2:?node number}
    # A node killed mid-transaction needs recovery; the grastate tells Galera where it was.
    launch "$n"
    wait_synced "$n"
    ;;
  status)
    for n in 1 2 3; do
      printf 'node%s: %s\n' "$n" "$(sql "$n" "SHOW STATUS LIKE 'wsrep_cluster_size'" 2>/dev/null | cut -f2 || echo down)"
    done
    ;;
  *) echo "usage: $0 start|stop|kill N|restart N|status" >&2; exit 2 ;;
esac
