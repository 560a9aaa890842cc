#!/usr/bin/env bash
# 70-conformance: schemathesis (PyPI, 4.x) against a running `cloudify-osb serve` that this
# stage starts itself (temp SQLite store, its own cloudify-sim with the built-in sample
# blueprint), on the project's own OpenAPI document rendered with the live catalog's IDs
# (tests/conformance/render.py). All phases, time-boxed. Fails on any server error, non-JSON
# error body or schema-breaking answer, and when no stateful step ran (parsed from the JSON
# report). Excluded checks and changed expectations: tests/conformance/README.md.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
. tests/lib.sh

max_time=${CONFORMANCE_MAX_TIME:-150}
work=$(mktemp -d /tmp/cloudify-osb-conformance.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

bin_dir="$(target_dir)/debug"
# Private copies: other checkouts sharing the target directory may rebuild the originals.
cp "$bin_dir/cloudify-osb" "$bin_dir/cloudify-sim" "$work/"
st_bin=$(venv_for schemathesis 'schemathesis==4.*')

"$work/cloudify-sim" --listen 127.0.0.1:0 --execution-seconds 0.2 >"$work/sim.log" 2>&1 &
pids+=($!)
sim_url=""
for _ in $(seq 100); do
  sim_url=$(sed -n 's/^cloudify-sim listening on \(http:\/\/.*\)$/\1/p' "$work/sim.log" 2>/dev/null | head -n1 || true)
  [ -n "$sim_url" ] && break
  sleep 0.1
done
[ -n "$sim_url" ] || { echo "cloudify-sim did not start"; cat "$work/sim.log"; exit 1; }

user=conformance
pass=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
common=(--store "sqlite:$work/broker.db" --cloudify-url "$sim_url"
        --cloudify-username admin --cloudify-password admin --log-format json)
env -u VAULT_ADDR -u VAULT_TOKEN "$work/cloudify-osb" sync "${common[@]}" >"$work/sync.log" 2>&1 \
  || { echo "cloudify-osb sync failed"; cat "$work/sync.log"; exit 1; }
port=$(free_port)
env -u VAULT_ADDR -u VAULT_TOKEN "$work/cloudify-osb" serve --listen "127.0.0.1:$port" \
  --username "$user" --password "$pass" "${common[@]}" >"$work/serve.log" 2>&1 &
pids+=($!)
wait_port "$port" 30
url="http://127.0.0.1:$port"

python3 - "$url" "$user" "$pass" >"$work/catalog.json" <<'PY'
import base64, sys, urllib.request
url, user, password = sys.argv[1:4]
req = urllib.request.Request(url + "/v2/catalog", headers={
    "X-Broker-API-Version": "2.17",
    "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
})
sys.stdout.write(urllib.request.urlopen(req, timeout=30).read().decode())
PY
"$st_bin/python" tests/conformance/render.py openapi/cloudify-osb.yaml "$work/catalog.json" \
  "$work/openapi.json"

echo "schemathesis $("$st_bin/schemathesis" --version | awk '{print $NF}') against $url (max ${max_time}s)"
excl=(--exclude-checks "${CONFORMANCE_EXCLUDE_CHECKS:-use_after_free}")
rc=0
(cd "$work" && "$st_bin/schemathesis" --config-file "$top/tests/conformance/schemathesis.toml" run \
  "$work/openapi.json" --url "$url" --auth "$user:$pass" \
  --checks all "${excl[@]}" \
  --phases examples,coverage,fuzzing,stateful --workers 1 --max-time "$max_time" \
  --request-timeout 20 --seed "${CONFORMANCE_SEED:-20261129}" \
  --report junit,json,ndjson --report-junit-path "$work/junit.xml" --report-ndjson-path "$work/events.ndjson" \
  --report-json-path "$work/report.json" --output-truncate false) \
  >"$work/schemathesis.log" 2>&1 || rc=$?
sed -n '/=== SUMMARY ===/,$p' "$work/schemathesis.log"

"$st_bin/python" tests/conformance/verdict.py "$work/report.json" "$work/events.ndjson" \
  "$work/serve.log" "$pass" || rc=1
if [ $rc -ne 0 ]; then
  echo "--- schemathesis output (failures) ---"
  sed -n '/=== FAILURES ===/,/=== SUMMARY ===/p' "$work/schemathesis.log" | head -300
  echo "70-conformance: FAILED (work dir $work kept)"
  trap - EXIT
  cleanup
  exit 1
fi
cleanup
trap - EXIT
rm -rf "$work"
echo "70-conformance: ok"
