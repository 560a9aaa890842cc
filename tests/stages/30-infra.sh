#!/usr/bin/env bash
# Stage: cfn-lint (PyPI) on infra/template.yaml, informational checks included; any finding
# fails. The route ↔ function ↔ policy consistency test is a Rust unit test (src/lambda.rs).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/lib.sh"
bin=$(venv_for cfn-lint 'cfn-lint==1.58.*')
"$bin/cfn-lint" --version
"$bin/cfn-lint" --include-checks I -- "$top/infra/template.yaml"
echo "cfn-lint: no findings in infra/template.yaml"
