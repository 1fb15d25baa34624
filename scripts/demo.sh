#!/usr/bin/env bash
# The main job on a built-in default model: build Kiln, make a small seeded
# Llama-style model with PyTorch, compile it, inspect it, run it, and compare
# the result with PyTorch eager.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${KILN_BUILD_DIR:-$here/build}"
work="${KILN_DEMO_DIR:-$build/demo}"
kiln="$build/bin/kiln"

bash "$here/scripts/build.sh"
mkdir -p "$work"
/usr/bin/python3 "$here/examples/tiny_llama/make_model.py" "$work"
"$kiln" compile "$work/tiny_llama.pt" -o "$work/tiny_llama.kiln"
"$kiln" inspect "$work/tiny_llama.kiln"
rm -rf "$work/out"
"$kiln" run "$work/tiny_llama.kiln" --input "$work/input.npy" --output-dir "$work/out"
/usr/bin/python3 "$here/examples/tiny_llama/compare.py" "$work/tiny_llama.pt" "$work/input.npy" "$work/out"
