#!/usr/bin/env bash
# The main job on the embedded default (CPU, small demo model, no network):
# installs dependencies (idempotent), builds, generates the demo model from
# its configuration, compiles its training step (MoE layers expanded into
# gate / dispatch / expert_ffn / combine, differentiated, AdamW update) and
# prints the IR of each stage and the parameter counts.
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
build/bin/moe-opt "$out/$name.mlir" --moe-expand-moe-layer -o "$out/$name.expanded.mlir"
build/bin/moe-opt "$out/$name.mlir" --moe-training-pipeline -o "$out/$name.train.mlir"
echo "== $name: @forward with the MoE layers expanded ($out/$name.expanded.mlir)"
cat "$out/$name.expanded.mlir"
echo
echo "== $name: compiled training step (moe-opt --moe-training-pipeline)"
echo "   @forward_grad (forward + backward) and @train_step (clipping, LR"
echo "   schedule, AdamW) are in $out/$name.train.mlir; ops of @train_step:"
sed -n '/func.func @train_step/,$p' "$out/$name.train.mlir" |
  grep -o "= moe\.[a-z_0-9]*" | sed 's/= //' | sort | uniq -c | sort -rn
echo
echo "== $name: parameters"
build/bin/moe-opt "$out/$name.mlir" --moe-param-report -o /dev/null
echo
echo "== $name: static memory plan of @train_step"
build/bin/moe-opt "$out/$name.train.mlir" --moe-memory-plan-report=function=train_step -o /dev/null
