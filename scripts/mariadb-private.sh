#!/usr/bin/env bash
# Start a private MariaDB server for the tests where none listens on 127.0.0.1:3306:
# its own datadir, socket and free port; root with an empty password over TCP.
# Prints the server URL (mysql://root@127.0.0.1:PORT) on stdout; the pid file is in DIR.
# Usage: scripts/mariadb-private.sh DIR [PORT]
# Given a DIR whose datadir exists and its PORT, it starts that server again as it was (the
# tests restart a private server under a running client this way).
set -euo pipefail
dir=${1:?usage: mariadb-private.sh DIR [PORT]}
mkdir -p "$dir"
if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
  echo "installing Debian's mariadb-server (no MariaDB on this machine)" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server >&2
fi
user=mysql
id -u mysql >/dev/null 2>&1 || user=root
port=${2:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
chown -R "$user" "$dir"
if [ ! -d "$dir/data/mysql" ]; then
  mariadb-install-db --user="$user" --datadir="$dir/data" --auth-root-authentication-method=normal \
    --skip-test-db >"$dir/install.log" 2>&1
fi
# exec, and every stream redirected: a subshell left holding our stdout would keep a caller's
# $(...) waiting for as long as the server runs.
(cd "$dir" && exec /usr/sbin/mariadbd --user="$user" --datadir="$dir/data" --socket="$dir/mysqld.sock" \
  --port="$port" --bind-address=127.0.0.1 --pid-file="$dir/mysqld.pid" \
  --log-error="$dir/error.log") </dev/null >/dev/null 2>&1 &
for _ in $(seq 1 100); do
  if mariadb --protocol=tcp -h127.0.0.1 -P"$port" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
    echo "mysql://root@127.0.0.1:$port"
    exit 0
  fi
  sleep 0.2
done
echo "private MariaDB did not start; see $dir/error.log" >&2
exit 1
