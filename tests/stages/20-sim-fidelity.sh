#!/usr/bin/env bash
# Stage: drive cloudify-sim with Cloudify's official Python REST client (PyPI cloudify-common
# 7.0.5) on each emulated version (4.3, 5.1, 6.4, 7.0), each on its own simulator, and check
# the lifecycle and the version differences (tests/sim-fidelity/fidelity.py).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/lib.sh"
bin=$(venv_for cloudify-common 'cloudify-common==7.0.5')
sim="${CLOUDIFY_SIM_BIN:-$(target_dir)/debug/cloudify-sim}"
if [ ! -x "$sim" ]; then
  echo "sim-fidelity: simulator binary $sim is missing (build the workspace first)" >&2
  exit 1
fi
"$bin/python" "$top/tests/sim-fidelity/fidelity.py" "$sim"
