#!/usr/bin/env bash
# Stage: the OSB lifecycle through the Lambda functions (DESIGN.md §8.4). Builds the
# functions (debug), starts `cargo lambda watch` (PyPI cargo-lambda) on a free loopback port
# with the functions' environment pointing at moto (DynamoDB and Secrets Manager), the
# Cloudify simulator and OpenBao; creates the table, invokes the scheduled sync function,
# sets the binder, then drives catalog → provision → poll → bind → unbind → deprovision
# over HTTP through every route's function (tests/lambda/lifecycle.py). Everything it makes
# carries a unique tag.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
. tests/lib.sh
for v in AWS_ENDPOINT_URL_DYNAMODB CLOUDIFY_SIM_URL VAULT_ADDR VAULT_TOKEN MARIADB_URL; do
  if [ -z "${!v:-}" ]; then
    echo "lambda e2e: $v is not set: run it from tests/run (which starts the servers)" >&2
    exit 1
  fi
done

state=${TEST_STATE:-$(mktemp -d)}
tag="lam$(python3 -c 'import uuid; print(uuid.uuid4().hex[:7])')"
log="$state/lambda-watch-$tag.log"
watch_pid=""

cleanup() {
  if [ -n "$watch_pid" ]; then
    # watch and the functions it started share its process group (setsid).
    kill -- "-$watch_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 -- "-$watch_pid" 2>/dev/null || true
  fi
  python3 tests/lambda/lifecycle.py cleanup "$tag" || true
  rm -f "$state/cloudify-osb-$tag"
}
trap cleanup EXIT

echo "lambda e2e: tag $tag"
bin=$(venv_for cargo-lambda 'cargo-lambda==1.9.*')
export PATH="$bin:$PATH"
cargo lambda --version

# Build before watch starts them: watch runs `cargo run` per function on first use.
cargo build -p cloudify-osb --bins --locked
# A private copy of the admin CLI (a target directory shared by several checkouts may be
# rebuilt by another one meanwhile).
cli="$state/cloudify-osb-$tag"
cp "$(target_dir)/debug/cloudify-osb" "$cli"

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_SECRETS_MANAGER="$AWS_ENDPOINT_URL_DYNAMODB"
export BROKER_STORE="dynamodb:$tag"
"$cli" store create-table "$BROKER_STORE"

eval "$(python3 tests/lambda/lifecycle.py setup "$tag")"

port=$(free_port)
# The functions get their credentials from the secrets only, as in AWS.
env -u VAULT_TOKEN -u BROKER_USERNAME -u BROKER_PASSWORD \
  CLOUDIFY_URL="$CLOUDIFY_SIM_URL" \
  setsid cargo lambda watch -p cloudify-osb -A 127.0.0.1 -P "$port" --ignore-changes \
  >"$log" 2>&1 &
watch_pid=$!
if ! wait_port "$port" 120; then
  echo "lambda e2e: cargo lambda watch did not listen; log:" >&2
  tail -50 "$log" >&2
  exit 1
fi
echo "lambda e2e: cargo lambda watch on 127.0.0.1:$port (log $log)"

fail() {
  echo "lambda e2e: $1; last lines of $log:" >&2
  tail -80 "$log" >&2
  exit 1
}

# The offering binds through Vault (an operator's step); the sync then marks it bindable.
"$cli" service set-binder "$E2E_BLUEPRINT" --binder vault --config "$VAULT_KV_MOUNT/binders/mariadb"
report=$(timeout 600 cargo lambda invoke osb-sync-catalog --invoke-address 127.0.0.1 \
  --invoke-port "$port" --data-file examples/events/sync-catalog.json) \
  || fail "the sync function failed"
echo "lambda e2e: sync report $report"


python3 tests/lambda/lifecycle.py run "$tag" "http://127.0.0.1:$port" || fail "the lifecycle failed"
