#!/usr/bin/env bash
# Lifecycle `delete` of node `mariadb` (blueprint.yaml): drops the application database and
# the account Vault connected as. Binding users are gone already: the broker revokes every
# binding's lease before it uninstalls. Inputs and MARIADB_CLIENT as in configure.sh.
set -euo pipefail
: "${database:?input database is required}"
: "${admin_user:?input admin_user is required}"
[[ $database =~ ^[A-Za-z0-9_]{1,64}$ ]] || { echo "database: letters, digits, _ only" >&2; exit 1; }
[[ $admin_user =~ ^[A-Za-z0-9_]{1,32}$ ]] || { echo "admin_user: letters, digits, _ only" >&2; exit 1; }

read -r -a client <<<"${MARIADB_CLIENT:-sudo mariadb}"
"${client[@]}" <<SQL
DROP DATABASE IF EXISTS \`$database\`;
DROP USER IF EXISTS '$admin_user'@'%';
SQL
echo "database $database and account $admin_user are removed"
