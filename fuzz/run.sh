#!/usr/bin/env bash
# fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]: runs each fuzz target for a bounded time on
# the stable toolchain (cargo-fuzz, --sanitizer none), one after the other, at low priority.
# Not part of tests/run. Seeds come from fuzz/seeds/<target> (in the repository); the working
# corpus and any crash artifacts go under fuzz/corpus and fuzz/artifacts (git-ignored).
# Every crash must become a regression test (a unit test with the crashing input).
# Needs: cargo install cargo-fuzz --locked
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(ids osb_request binder_config)
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$here/target}}
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2; exit 2; }
nice -n 19 cargo fuzz build --sanitizer none
rc=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== fuzz $t for ${secs}s"
  start=$(date +%s)
  if nice -n 19 cargo fuzz run --sanitizer none "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$t/" 2>"corpus/$t.log"; then
    echo "== $t: no crash in $(( $(date +%s) - start ))s; $(grep -E '^#[0-9]+.*(DONE|pulse)' "corpus/$t.log" | tail -n1)"
  else
    echo "== $t: FAILED after $(( $(date +%s) - start ))s; artifacts in fuzz/artifacts/$t:"
    ls "artifacts/$t"
    tail -n 30 "corpus/$t.log"
    rc=1
  fi
done
exit $rc
