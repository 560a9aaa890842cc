#!/usr/bin/env bash
# moto server, the DynamoDB-compatible server of the DynamoDB store's tests: `moto.sh start|stop`.
# start: a venv with PyPI `moto[server]` (pinned: moto_serial.py uses its server module), moto
# on a free loopback port handling one request at a time (moto_serial.py says why); waits
# until it answers; writes AWS_ENDPOINT_URL_DYNAMODB and dummy AWS credentials and region to
# $TEST_STATE/moto.env, always, so that no test can ever reach AWS with real credentials; and
# MOTO_PYTHON (the venv's python, for tests that start their own moto_serial.py to stop it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
: "${TEST_STATE:?TEST_STATE must be set (tests/run sets it)}"
mkdir -p "$TEST_STATE"
pidfile="$TEST_STATE/moto.pid"
envfile="$TEST_STATE/moto.env"
log="$TEST_STATE/moto.log"

case "${1:-}" in
start)
  stop_pidfile "$pidfile"
  bin=$(venv_for moto 'moto[server]==5.2.5')
  port=$(free_port)
  "$bin/python" "$here/moto_serial.py" 127.0.0.1 "$port" >"$log" 2>&1 &
  echo $! >"$pidfile"
  url="http://127.0.0.1:$port"
  code=000
  for i in $(seq 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url/moto-api/" || true)
    [ "$code" = 200 ] && break
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "moto exited; see $log" >&2; tail -20 "$log" >&2; exit 1
    fi
    sleep 0.1
  done
  if [ "$code" != 200 ]; then
    echo "moto not answering after 30s (last status $code); see $log" >&2
    stop_pidfile "$pidfile"; exit 1
  fi
  {
    echo "export AWS_ENDPOINT_URL_DYNAMODB=$url"
    echo "export AWS_ACCESS_KEY_ID=testing"
    echo "export AWS_SECRET_ACCESS_KEY=testing"
    echo "unset AWS_SESSION_TOKEN AWS_PROFILE"
    echo "export AWS_REGION=us-east-1"
    echo "export MOTO_PYTHON=$bin/python"
    echo "export AWS_EC2_METADATA_DISABLED=true"
  } >"$envfile"
  echo "moto on $url"
  ;;
stop)
  stop_pidfile "$pidfile"
  rm -f "$envfile"
  ;;
*)
  echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
