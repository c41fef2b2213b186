#!/usr/bin/env bash
# Start a private three-node Galera cluster on loopback for the tests: three mariadbd, each with
# its own datadir, socket, SQL port and Galera ports (gcomm, IST, SST on 127.0.0.1); node 1
# bootstraps, nodes 2 and 3 join it by rsync SST. root with an empty password over TCP.
# Prints the three server URLs (mysql://root@127.0.0.1:PORT), one a line; node N's pid file is
# DIR/nodeN/mysqld.pid. Usage: scripts/galera-private.sh DIR
set -euo pipefail
dir=${1:?usage: galera-private.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ ! -e /usr/lib/galera/libgalera_smm.so ] || ! command -v rsync >/dev/null || [ ! -x /usr/sbin/mariadbd ]; then
  echo "installing Debian's mariadb-server, galera-4 and rsync" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends mariadb-server galera-4 rsync >&2
fi
user=mysql
id -u mysql >/dev/null 2>&1 || user=root
# 3 nodes x (SQL, gcomm, IST, SST) free ports.
read -r -a ports <<<"$(python3 -c '
import socket
socks = [socket.socket() for _ in range(12)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')"
gcomm="gcomm://127.0.0.1:${ports[1]},127.0.0.1:${ports[5]},127.0.0.1:${ports[9]}"

start_node() {  # start_node N [--wsrep-new-cluster]
  local n=$1; shift
  local i=$(( (n - 1) * 4 ))
  local sql=${ports[$i]} g=${ports[$((i + 1))]} ist=${ports[$((i + 2))]} sst=${ports[$((i + 3))]}
  local d=$dir/node$n
  mkdir -p "$d"
  chown -R "$user" "$d"
  if [ ! -d "$d/data/mysql" ]; then
    mariadb-install-db --user="$user" --datadir="$d/data" --auth-root-authentication-method=normal \
      --skip-test-db >"$d/install.log" 2>&1
  fi
  echo "$sql" >"$d/port"
  # Failure detection in seconds rather than the WAN defaults, so a stopped node is evicted
  # within a test's patience.
  (cd "$d" && exec /usr/sbin/mariadbd --no-defaults --user="$user" --datadir="$d/data" \
    --socket="$d/mysqld.sock" --port="$sql" --bind-address=127.0.0.1 --pid-file="$d/mysqld.pid" \
    --log-error="$d/error.log" --binlog-format=ROW --default-storage-engine=InnoDB \
    --innodb-autoinc-lock-mode=2 --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
    --performance-schema=OFF \
    --wsrep-on=ON --wsrep-provider=/usr/lib/galera/libgalera_smm.so \
    --wsrep-cluster-name=steward-test --wsrep-cluster-address="$gcomm" \
    --wsrep-node-name="node$n" --wsrep-node-address="127.0.0.1:$g" \
    --wsrep-sst-method=rsync --wsrep-sst-receive-address="127.0.0.1:$sst" \
    --wsrep-provider-options="base_port=$g;gmcast.listen_addr=tcp://127.0.0.1:$g;ist.recv_addr=127.0.0.1:$ist;gcache.size=32M;evs.suspect_timeout=PT2S;evs.inactive_timeout=PT4S;evs.inactive_check_period=PT0.5S;evs.keepalive_period=PT0.5S" \
    "$@") </dev/null >/dev/null 2>&1 &
}

wait_synced() {  # wait_synced N
  local port; port=$(cat "$dir/node$1/port")
  for _ in $(seq 1 300); do
    if [ "$(mariadb --protocol=tcp -h127.0.0.1 -P"$port" -uroot -N -e \
      "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2)" = Synced ]; then
      return 0
    fi
    sleep 0.2
  done
  echo "Galera node $1 did not reach Synced; see $dir/node$1/error.log" >&2
  return 1
}

start_node 1 --wsrep-new-cluster
wait_synced 1
start_node 2
wait_synced 2
start_node 3
wait_synced 3
for n in 1 2 3; do
  echo "mysql://root@127.0.0.1:$(cat "$dir/node$n/port")"
done
