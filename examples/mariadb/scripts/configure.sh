#!/usr/bin/env bash
# Lifecycle `configure` of node `mariadb` (blueprint.yaml): creates the application database
# and the account Vault connects as. That account may create users and grant them rights
# on databases; it owns no data. Vault creates one user per binding with it, and drops that
# user when the binding is removed or its lease ends.
#
# Inputs (environment variables, as Cloudify's script plugin passes them): database,
# admin_user, admin_password. MARIADB_CLIENT is the client command (default: `sudo mariadb`,
# root over the local socket); examples/demo.sh points it at its own server.
set -euo pipefail
: "${database:?input database is required}"
: "${admin_user:?input admin_user is required}"
: "${admin_password:?input admin_password is required}"
# Identifiers and the password go into SQL text: allow only what cannot break out of it.
[[ $database =~ ^[A-Za-z0-9_]{1,64}$ ]] || { echo "database: letters, digits, _ only" >&2; exit 1; }
[[ $admin_user =~ ^[A-Za-z0-9_]{1,32}$ ]] || { echo "admin_user: letters, digits, _ only" >&2; exit 1; }
[[ $admin_password =~ ^[A-Za-z0-9_.,:+=-]{16,}$ ]] || {
  echo "admin_password: at least 16 characters of A-Z a-z 0-9 _ . , : + = -" >&2; exit 1; }

read -r -a client <<<"${MARIADB_CLIENT:-sudo mariadb}"
"${client[@]}" <<SQL
CREATE DATABASE IF NOT EXISTS \`$database\`;
CREATE USER IF NOT EXISTS '$admin_user'@'%' IDENTIFIED BY '$admin_password';
ALTER USER '$admin_user'@'%' IDENTIFIED BY '$admin_password';
GRANT CREATE USER ON *.* TO '$admin_user'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES,
  LOCK TABLES ON \`$database\`.* TO '$admin_user'@'%' WITH GRANT OPTION;
SQL
echo "database $database and account $admin_user are ready"
