#!/usr/bin/env bash
# Step 2 (an operator, once per MariaDB server): keep the password of the MariaDB account
# Vault connects as (blueprint input vault_admin_user, created by scripts/configure.sh) in
# the broker's KV mount, at the place binder-config.json names (connection.password_ref).
# The password comes from MARIADB_VAULT_ADMIN_PASSWORD or, when that is unset, from stdin;
# it is never printed and never passed on a command line.
. "$(dirname "$0")/_vault.sh"
kv_mount=${VAULT_KV_MOUNT:-cloudify-osb}
password=${MARIADB_VAULT_ADMIN_PASSWORD:-}
if [ -z "$password" ]; then
  [ -t 0 ] && printf 'password of the MariaDB account Vault connects as: ' >&2
  IFS= read -rs password
  [ -t 0 ] && echo >&2
fi
[ -n "$password" ] || { echo "no password given" >&2; exit 1; }
vault_api POST "$kv_mount/data/admin/mariadb" \
  "{\"data\": {\"password\": $(json_string "$password")}}" >/dev/null
echo "admin password: stored at $kv_mount/admin/mariadb (key password)"
