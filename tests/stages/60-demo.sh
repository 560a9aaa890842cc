#!/usr/bin/env bash
# Stage: the README's first Quick start command, non-interactively. examples/demo.sh must
# exit 0, print `login succeeded` after bind and `login refused` after unbind, hand out
# exactly the credential keys that tests/examples/check_examples.py derives from
# examples/mariadb/binder-config.json (the keys the Kubernetes examples rely on), and leave
# its state directory removed. Uses tests/run's MariaDB (MARIADB_URL) when set.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/lib.sh"
log="${TEST_STATE:-$(mktemp -d)}/demo.log"
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }

timeout 600 bash "$top/examples/demo.sh" </dev/null >"$log" 2>&1
rc=$?
sed 's/^/  | /' "$log"
[ "$rc" = 0 ] && ok "examples/demo.sh exits 0" || bad "examples/demo.sh exited $rc"

succeeded=$(grep -n -x 'login succeeded' "$log" | head -1 | cut -d: -f1)
refused=$(grep -n -x 'login refused' "$log" | head -1 | cut -d: -f1)
unbind=$(grep -n '^==> [0-9]*\. Unbind' "$log" | head -1 | cut -d: -f1)
bind=$(grep -n '^==> [0-9]*\. Bind' "$log" | head -1 | cut -d: -f1)
if [ -n "$succeeded" ] && [ -n "$bind" ] && [ -n "$unbind" ] && [ "$bind" -lt "$succeeded" ] && [ "$succeeded" -lt "$unbind" ]; then
  ok "login succeeded between bind and unbind"
else
  bad "no 'login succeeded' line between bind and unbind"
fi
if [ -n "$refused" ] && [ -n "$unbind" ] && [ "$unbind" -lt "$refused" ]; then
  ok "login refused after unbind"
else
  bad "no 'login refused' line after unbind"
fi

bin=$(venv_for examples 'PyYAML==6.*' 'jsonschema==4.*')
want=$("$bin/python" "$top/tests/examples/check_examples.py" "$top" --credential-keys | tr '\n' ' ' | sed 's/ $//')
got=$(sed -n 's/^ *credential keys: //p' "$log" | head -1)
[ -n "$got" ] && [ "$got" = "$want" ] && ok "the binder returned the keys the examples rely on: $got" \
  || bad "credential keys: the demo got [$got], the examples expect [$want]"

dir=$(sed -n 's/^cloudify-osb demo (state in \(.*\))$/\1/p' "$log" | head -1)
[ -n "$dir" ] && [ ! -e "$dir" ] && ok "the demo removed its state directory" || bad "state directory [$dir] left behind"
grep -q '^demo: stopped everything it started$' "$log" && ok "the demo stopped what it started" \
  || bad "the demo did not report stopping what it started"

echo "demo: $passed passed, $failed failed"
[ "$failed" = 0 ]
