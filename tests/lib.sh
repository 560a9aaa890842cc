# Shared shell helpers for tests/run, tests/services/*.sh and tests/stages/*.sh.
# Source it: . "$(dirname "$0")/../lib.sh"  (or from tests/: . tests/lib.sh)

# Print a free TCP port on 127.0.0.1.
free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# wait_port PORT [SECONDS]: wait until something listens on 127.0.0.1:PORT.
wait_port() {
  local port=$1 secs=${2:-30} i=0
  while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -ge $((secs * 10)) ]; then
      echo "nothing listens on 127.0.0.1:$port after ${secs}s" >&2
      return 1
    fi
    sleep 0.1
  done
}

# venv_for TOOL PIP_SPEC...: create or reuse a venv for one tool and print its bin dir.
# One venv per tool, because some tools pin old packages (cloudify-common).
venv_for() {
  local tool=$1; shift
  local dir="${XDG_CACHE_HOME:-$HOME/.cache}/cloudify-osb/venv-$tool"
  local stamp="$dir/.installed"
  local want="$*"
  if [ ! -x "$dir/bin/python" ]; then
    python3 -m venv "$dir" >&2 || return 1
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" >&2 || return 1
    echo "$want" > "$stamp"
  fi
  echo "$dir/bin"
}

# The directory cargo builds into.
target_dir() {
  local top
  top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  echo "${CARGO_TARGET_DIR:-$top/target}"
}

# stop_pidfile FILE: stop the process whose pid is in FILE, wait for it, remove FILE.
stop_pidfile() {
  local f=$1 pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
  return 0
}
