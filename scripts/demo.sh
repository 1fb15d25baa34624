#!/usr/bin/env bash
# The main job on the built-in default model: build Kiln, export the demo
# MobileLLM checkpoint (examples/mobilellm/demo-model, trained here on the
# `fortunes` package) to one program file with `kiln export-hf --verify`
# (prefill logits and greedy tokens checked against eager PyTorch), show what
# is inside, and generate text from a prompt.
#
#   bash scripts/demo.sh [CHECKPOINT_DIR] [PROMPT]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${KILN_BUILD_DIR:-$here/build}"
work="${KILN_DEMO_DIR:-$build/demo}"
kiln="$build/bin/kiln"
checkpoint="${1:-$here/examples/mobilellm/demo-model}"
prompt="${2:-The meaning of life is}"

bash "$here/scripts/build.sh"
mkdir -p "$work"
program="$work/$(basename "$checkpoint").kiln"
"$kiln" export-hf "$checkpoint" -o "$program" --verify --report "$work/export-report.json"
"$kiln" inspect "$program"
echo
echo "demo: kiln generate $program --prompt \"$prompt\" -n 48"
"$kiln" generate "$program" --prompt "$prompt" -n 48
