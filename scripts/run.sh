#!/usr/bin/env bash
# The main job on the embedded default (CPU, small demo model, no network):
# installs dependencies (idempotent), builds, generates the demo model from
# its configuration, compiles it (composite MoE layers expanded into gate /
# dispatch / expert_ffn / combine) and prints the IR and parameter counts.
set -euo pipefail
cd "$(dirname "$0")/.."

config=${1:-models/demo.json}

bash scripts/setup.sh >&2
cmake --preset default >/dev/null
cmake --build --preset default --target moe-opt moe-model-gen -- -j"$(nproc)" >&2

out=build/run
mkdir -p "$out"
name=$(basename "$config" .json)
build/bin/moe-model-gen "$config" -o "$out/$name.mlir"
echo "== $name: compiled IR (moe-opt --moe-expand-moe-layer)"
build/bin/moe-opt "$out/$name.mlir" --moe-expand-moe-layer -o "$out/$name.expanded.mlir"
cat "$out/$name.expanded.mlir"
echo
echo "== $name: parameters"
build/bin/moe-opt "$out/$name.mlir" --moe-param-report -o /dev/null
