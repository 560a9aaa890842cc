#!/usr/bin/env bash
# Stage: every file under examples/ is checked (tests/examples/check_examples.py): the
# MariaDB blueprint, its simulator fixture, binder configs and Vault setup scripts; the
# Kubernetes manifests against small schemas of their kinds (tests/examples/) with names
# cross-checked; the Lambda events; and no example file that no test uses.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/lib.sh"
bin=$(venv_for examples 'PyYAML==6.*' 'jsonschema==4.*')
"$bin/python" "$top/tests/examples/check_examples.py" "$top"
