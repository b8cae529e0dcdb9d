// moe-opt knows the moe dialect next to the upstream dialects a training
// plan uses (func, arith, tensor, shard), and lists our passes and pipeline.
// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt --help | FileCheck %s --check-prefix=HELP

// CHECK: shard.grid @grid(shape = 2x2x1)
shard.grid @grid(shape = 2x2x1)

// CHECK-LABEL: func.func @mixed
func.func @mixed(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // CHECK: arith.constant
  %c = arith.constant dense<1.0> : tensor<4x8xf32>
  // CHECK: tensor.empty
  %e = tensor.empty() : tensor<4x8xf32>
  // CHECK: moe.add
  %s = moe.add %x, %c : tensor<4x8xf32>
  // CHECK: shard.sharding @grid split_axes = {{\[\[}}0]]
  %sh = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  return %s : tensor<4x8xf32>
}

// HELP: --moe-build-train-step
// HELP: --moe-differentiate
// HELP: --moe-expand-moe-layer
// HELP: --moe-param-report
// HELP: --sharding-propagation
// HELP: --moe-training-pipeline
