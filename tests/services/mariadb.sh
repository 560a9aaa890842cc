#!/usr/bin/env bash
# MariaDB for the Vault binder's tests: `mariadb.sh start|stop`.
# start: uses the machine's MariaDB on 127.0.0.1:3306 (root, empty password) when it answers;
# otherwise, or with TESTS_FORCE_OWN_SERVICES=1, installs Debian's mariadb-server if missing
# and starts a private server in a temp datadir on a free loopback port. Writes
# MARIADB_URL=mysql://root@127.0.0.1:PORT to $TEST_STATE/mariadb.env. Tests create their own
# databases and users with a unique prefix and tolerate leftovers on a shared server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
: "${TEST_STATE:?TEST_STATE must be set (tests/run sets it)}"
mkdir -p "$TEST_STATE"
pidfile="$TEST_STATE/mariadb.pid"
envfile="$TEST_STATE/mariadb.env"
dirfile="$TEST_STATE/mariadb.datadir"

machine_answers() {
  command -v mariadb >/dev/null 2>&1 || return 1
  mariadb --no-defaults -h127.0.0.1 -P3306 -uroot --connect-timeout=3 -e 'SELECT 1' >/dev/null 2>&1
}

install_server() {
  if command -v mariadbd >/dev/null 2>&1 && command -v mariadb-install-db >/dev/null 2>&1 \
    && command -v mariadb >/dev/null 2>&1; then
    return 0
  fi
  echo "installing mariadb-server (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || true
  apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client >&2
}

start_own() {
  install_server
  local dir port sock i
  # Short base path: the socket path must stay under 108 bytes.
  dir=$(mktemp -d /tmp/osb-mdb.XXXXXX)
  echo "$dir" >"$dirfile"
  port=$(free_port)
  sock="$dir/s"
  mariadb-install-db --no-defaults --user=root --datadir="$dir/data" \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 || {
    echo "mariadb-install-db failed; see $dir/install.log" >&2; tail -20 "$dir/install.log" >&2; exit 1; }
  mariadbd --no-defaults --datadir="$dir/data" --socket="$sock" --pid-file="$dir/pid" \
    --port="$port" --bind-address=127.0.0.1 --user=root --skip-name-resolve \
    --log-error="$dir/error.log" >"$dir/stdout.log" 2>&1 &
  echo $! >"$pidfile"
  for i in $(seq 300); do
    mariadb-admin --no-defaults --socket="$sock" -uroot ping >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "mariadbd exited; see $dir/error.log" >&2; tail -20 "$dir/error.log" >&2; exit 1
    fi
    sleep 0.1
  done
  mariadb-admin --no-defaults --socket="$sock" -uroot ping >/dev/null 2>&1 || {
    echo "mariadbd not answering after 30s; see $dir/error.log" >&2; exit 1; }
  # Root over TCP from 127.0.0.1 with an empty password, like the machine's server.
  mariadb --no-defaults --socket="$sock" -uroot -e \
    "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
  echo "export MARIADB_URL=mysql://root@127.0.0.1:$port" >"$envfile"
  echo "own mariadb on 127.0.0.1:$port (datadir $dir)"
}

case "${1:-}" in
start)
  if [ "${TESTS_FORCE_OWN_SERVICES:-0}" != 1 ] && machine_answers; then
    echo "export MARIADB_URL=mysql://root@127.0.0.1:3306" >"$envfile"
    echo "using the machine's mariadb on 127.0.0.1:3306"
  else
    start_own
  fi
  ;;
stop)
  if [ -f "$pidfile" ] && [ -f "$dirfile" ]; then
    dir=$(cat "$dirfile")
    mariadb-admin --no-defaults --socket="$dir/s" -uroot shutdown >/dev/null 2>&1 || true
    for i in $(seq 100); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
    stop_pidfile "$pidfile"
    case "$dir" in /tmp/osb-mdb.*) rm -rf "$dir" ;; esac
  fi
  rm -f "$envfile" "$dirfile" "$pidfile"
  ;;
*)
  echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
