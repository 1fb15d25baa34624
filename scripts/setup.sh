#!/usr/bin/env bash
# Installs the Debian 12 packages Kiln needs (only the missing ones).
# Runs non-interactively; needs root (or sudo) only when something is missing.
set -euo pipefail

PACKAGES=(
  cmake ninja-build g++ git
  libtorch-dev python3-torch
  llvm-19-dev libmlir-19-dev mlir-19-tools
  libflatbuffers-dev flatbuffers-compiler
  pybind11-dev python3-pybind11
  libgtest-dev
  python3-pytest python3-numpy
  libsentencepiece-dev sentencepiece python3-sentencepiece
  libpcre2-dev nlohmann-json3-dev
  libhwy-dev
  libopenblas0-pthread time
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "setup: error: missing packages and not root: ${missing[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
