#!/usr/bin/env bash
# Lifecycle `create` of node `mariadb` (blueprint.yaml): installs MariaDB from the host's
# packages, listening on all addresses on $port with an InnoDB buffer pool of
# $buffer_pool_size. Cloudify's script plugin passes the operation inputs as environment
# variables. Idempotent: a second run only rewrites the settings and restarts the server.
set -euo pipefail
: "${port:?input port is required}"
: "${buffer_pool_size:?input buffer_pool_size is required}"
case "$port" in *[!0-9]*|'') echo "port must be a number" >&2; exit 1 ;; esac
case "$buffer_pool_size" in 128M|1G) ;; *) echo "unsupported buffer_pool_size" >&2; exit 1 ;; esac

log() { if command -v ctx >/dev/null 2>&1; then ctx logger info "$*"; else echo "$*"; fi; }

if command -v apt-get >/dev/null 2>&1; then
  log "installing mariadb-server (apt-get)"
  sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server
  conf=/etc/mysql/mariadb.conf.d/90-cloudify.cnf
else
  log "installing mariadb-server (dnf)"
  sudo dnf install -y -q mariadb-server
  conf=/etc/my.cnf.d/90-cloudify.cnf
fi

printf '[mysqld]\nbind-address = 0.0.0.0\nport = %s\ninnodb_buffer_pool_size = %s\n' \
  "$port" "$buffer_pool_size" | sudo tee "$conf" >/dev/null
sudo systemctl enable mariadb >/dev/null 2>&1 || true
sudo systemctl restart mariadb
log "mariadb listens on port $port"
