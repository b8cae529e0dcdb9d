#!/usr/bin/env bash
# The synthetic demo on the embedded default (CPU, small model, no network):
# installs dependencies (idempotent), builds, generates the demo model from
# its configuration, compiles its training step (MoE layers expanded into
# gate / dispatch / expert_ffn / combine, differentiated, AdamW update) into
# an execution plan, prints what the compiler made of it, and trains it on
# the CPU runtime.
#
#   ./scripts/demo.sh [config.json] [steps]    (defaults: models/demo.json 200)
set -euo pipefail
cd "$(dirname "$0")/.."

config=${1:-models/demo.json}
steps=${2:-200}

bash scripts/setup.sh >&2
cmake --preset default >/dev/null
cmake --build --preset default --target moe-opt moe-model-gen moe-train \
  -- -j"$(nproc)" >&2

out=build/run
mkdir -p "$out"
name=$(basename "$config" .json)
build/bin/moe-model-gen "$config" -o "$out/$name.mlir"
build/bin/moe-opt "$out/$name.mlir" --moe-expand-moe-layer -o "$out/$name.expanded.mlir"
build/bin/moe-opt "$out/$name.mlir" \
  --moe-training-pipeline="lr=0.003 warmup-steps=20" -o "$out/$name.train.mlir" \
  --moe-emit-plan="output=$out/$name.moeplan seed=1"

echo "== $name: IR of every stage is in $out/"
echo "   $name.mlir           the model (@forward, composite moe.moe_layer)"
echo "   $name.expanded.mlir  MoE layers as gate/dispatch/expert_ffn/combine"
echo "   $name.train.mlir     @forward_grad and @train_step"
echo "   $name.moeplan        the execution plan the runtime runs"
echo
echo "== $name: one expanded MoE layer"
grep -m1 -A3 "moe.gate " "$out/$name.expanded.mlir" | cut -c1-200
echo
echo "== $name: ops of @train_step"
sed -n '/func.func @train_step/,$p' "$out/$name.train.mlir" |
  grep -o "= moe\.[a-z_0-9]*" | sed 's/= //' | sort | uniq -c | sort -rn
echo
echo "== $name: parameters"
build/bin/moe-opt "$out/$name.mlir" --moe-param-report -o /dev/null
echo
echo "== $name: static memory plan of @train_step"
build/bin/moe-opt "$out/$name.train.mlir" --moe-memory-plan-report=function=train_step -o /dev/null
echo
echo "== $name: training $steps steps on the synthetic reversal task (CPU)"
build/bin/moe-train "$out/$name.moeplan" --steps "$steps" --log-every 20 \
  --metrics "$out/$name.metrics.jsonl"
echo "metrics: $out/$name.metrics.jsonl"
