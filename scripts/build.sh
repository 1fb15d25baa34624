#!/usr/bin/env bash
# Installs missing packages, then configures and builds Kiln into build/ (or $KILN_BUILD_DIR).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${KILN_BUILD_DIR:-$here/build}"

bash "$here/scripts/setup.sh"
if [ ! -f "$build/build.ninja" ]; then
  cmake -G Ninja -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DKILN_PYTHON=/usr/bin/python3
fi
cmake --build "$build" -j "$(nproc)"
echo "build: done: $build/bin/kiln"
