# Sourced by the numbered setup scripts beside it. Talks to Vault or OpenBao over their HTTP
# API with curl, so it needs no vault/bao CLI. Needs VAULT_ADDR and VAULT_TOKEN (a token
# allowed to mount engines and write policies: an operator's, not the broker's).
set -euo pipefail
: "${VAULT_ADDR:?set VAULT_ADDR, e.g. http://127.0.0.1:8200}"
: "${VAULT_TOKEN:?set VAULT_TOKEN (an operator token)}"
VAULT_ADDR=${VAULT_ADDR%/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# vault_api METHOD PATH [JSON]: one request; prints the response body; fails with Vault's
# errors on any status but 2xx. The token goes in a header read from a pipe, not argv.
vault_api() {
  local method=$1 path=$2 body=${3:-} out code
  local data=()
  # The body goes through stdin, so no secret in it shows on a command line.
  if [ -n "$body" ]; then data=(-H 'Content-Type: application/json' --data-binary @-); fi
  out=$(mktemp)
  code=$(printf '%s' "$body" | curl -sS --max-time 15 -o "$out" -w '%{http_code}' -X "$method" \
    -H @<(printf 'X-Vault-Token: %s\n' "$VAULT_TOKEN") "${data[@]}" \
    "$VAULT_ADDR/v1/$path") || { rm -f "$out"; echo "cannot reach Vault at $VAULT_ADDR" >&2; return 1; }
  if [ "${code:0:1}" != 2 ]; then
    echo "Vault answered $code to $method $path: $(cat "$out")" >&2
    rm -f "$out"
    return 1
  fi
  cat "$out"
  rm -f "$out"
}

# json_string TEXT: TEXT as a JSON string literal.
# (printf is a builtin: TEXT never shows on a command line.)
json_string() { printf '%s' "$1" | python3 -c 'import json, sys; print(json.dumps(sys.stdin.read()))'; }

# mounted PATH: whether a secrets engine is mounted at PATH/.
mounted() {
  vault_api GET sys/mounts | python3 -c 'import json, sys; sys.exit(0 if sys.argv[1] + "/" in json.load(sys.stdin)["data"] else 1)' "$1"
}
