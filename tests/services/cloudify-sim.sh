#!/usr/bin/env bash
# cloudify-sim.sh start|stop: the shared Cloudify manager simulator for tests (defaults:
# version 7.0, admin/admin, default_tenant, the built-in sample blueprint), with fast
# executions. Writes CLOUDIFY_SIM_URL and CLOUDIFY_SIM_BIN to $TEST_STATE/cloudify-sim.env.
# Builds nothing: tests/run builds the workspace first.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
: "${TEST_STATE:?TEST_STATE must be set}"
pidfile="$TEST_STATE/cloudify-sim.pid"
envfile="$TEST_STATE/cloudify-sim.env"
log="$TEST_STATE/cloudify-sim.log"

case "${1:-}" in
  start)
    bin="$(target_dir)/debug/cloudify-sim"
    bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
    [ -x "$bin" ] || { echo "cloudify-sim: $bin is missing (build the workspace first)" >&2; exit 1; }
    stop_pidfile "$pidfile" || true
    # Create the log before the server starts: the loop below reads it at once.
    : >"$log"
    "$bin" --listen 127.0.0.1:0 --execution-seconds "${CLOUDIFY_SIM_EXECUTION_SECONDS:-0.5}" \
      >"$log" 2>&1 &
    echo $! >"$pidfile"
    url=""
    for _ in $(seq 100); do
      url=$(sed -n 's/^cloudify-sim listening on \(http:\/\/.*\)$/\1/p' "$log" 2>/dev/null | head -n1 || true)
      [ -n "$url" ] && break
      kill -0 "$(cat "$pidfile")" 2>/dev/null || break
      sleep 0.1
    done
    if [ -z "$url" ]; then
      echo "cloudify-sim did not start; log:" >&2
      cat "$log" >&2
      stop_pidfile "$pidfile" || true
      rm -f "$pidfile"
      exit 1
    fi
    printf 'export CLOUDIFY_SIM_URL=%s\nexport CLOUDIFY_SIM_BIN=%s\n' "$url" "$bin" >"$envfile"
    echo "cloudify-sim on $url"
    ;;
  stop)
    stop_pidfile "$pidfile" || true
    rm -f "$pidfile" "$envfile"
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
