#!/usr/bin/env bash
# The whole test suite: builds (installing missing packages first), then runs
# every test through ctest: gtest units, lit + FileCheck, pytest end to end.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${KILN_BUILD_DIR:-$here/build}"

bash "$here/scripts/build.sh"
cd "$build"
ctest --output-on-failure --timeout 1200 "$@"
