// Every error of moe-partition states what it expected and what it found.
// The steps below are minimal hand-written @train_step functions, each
// valid up to the one rule it breaks, partitioned on a dp=2 ep=2 tp=2 grid.
// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-partition="dp=2 ep=2 tp=2"

// Options are checked before anything runs (on a generated model).
// RUN: moe-model-gen %S/Inputs/partition-tiny.json | moe-opt --moe-training-pipeline -o %t.mlir
// RUN: not moe-opt %t.mlir --moe-partition="dp=0" -o /dev/null 2>&1 | FileCheck %s --check-prefix=SIZE
// RUN: not moe-opt %t.mlir --moe-partition="ep=-2 tp=3" -o /dev/null 2>&1 | FileCheck %s --check-prefix=SIZE-NEG
// RUN: not moe-opt %t.mlir --moe-partition="dp=2 zero=3" -o /dev/null 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not moe-opt %t.mlir --moe-partition="zero=-1" -o /dev/null 2>&1 | FileCheck %s --check-prefix=ZERO-NEG
// RUN: not moe-opt %t.mlir --moe-partition="function=step" -o /dev/null 2>&1 | FileCheck %s --check-prefix=NOFUNC
// RUN: not moe-opt %t.mlir --moe-partition="zero=1" -o /dev/null 2>&1 | FileCheck %s --check-prefix=ZERO-NODATA
// RUN: not moe-opt %t.mlir --moe-partition="tp=2 zero=2" -o /dev/null 2>&1 | FileCheck %s --check-prefix=ZERO-TP
// The same model generated for a grid it does not fit: 4 experts over
// ep=3, 4 heads over tp=3, 8 sequences over dp x ep = 3 x 1, 4 gating
// groups over dp x ep = 8 x 1.
// RUN: not moe-opt %t.mlir --moe-partition="ep=3" -o /dev/null 2>&1 | FileCheck %s --check-prefix=EXPERTS
// RUN: not moe-opt %t.mlir --moe-partition="tp=3" -o /dev/null 2>&1 | FileCheck %s --check-prefix=HEADS
// RUN: not moe-opt %t.mlir --moe-partition="dp=3" -o /dev/null 2>&1 | FileCheck %s --check-prefix=BATCH
// RUN: not moe-opt %t.mlir --moe-partition="dp=8" -o /dev/null 2>&1 | FileCheck %s --check-prefix=GROUPS

// SIZE: error: moe-partition: expected grid sizes >= 1, found dp=0 ep=1 tp=1
// SIZE-NEG: error: moe-partition: expected grid sizes >= 1, found dp=1 ep=-2 tp=3
// ZERO: error: moe-partition: expected zero = 0, 1 or 2, found 3
// ZERO-NEG: error: moe-partition: expected zero = 0, 1 or 2, found -1
// ZERO-NODATA: error: moe-partition: zero=1 partitions optimizer state over the data-parallel ranks (dp x ep), but this grid has none (dp=1, ep=1); use zero=0 or a grid with dp or ep > 1
// ZERO-TP: error: moe-partition: zero=2 partitions optimizer state over the data-parallel ranks (dp x ep), but this grid has none (dp=1, ep=1, only tensor parallelism); use zero=0 or a grid with dp or ep > 1
// NOFUNC: error: moe-partition: expected a function @step to partition (run --moe-training-pipeline first), found none
// EXPERTS: error: moe-partition: expected the experts of 'encoder.layers.1.ffn.experts.fc1.weight' (dimension 0 of 'tensor<4x16x32xf32>') to be divisible by ep = 3, found 4 experts
// HEADS: error: moe-partition: expected num_heads to be divisible by tp = 3, found num_heads = 4
// BATCH: error: moe-partition: expected the batch size of input 'src_tokens' to be divisible by the 3 token shards (dp x ep = 3 x 1), found 8
// GROUPS: error: moe-partition: expected the gating groups to be a multiple of the 8 token shards (dp x ep = 8 x 1) so that each rank routes whole groups, found 4 group(s); set #moe.gating<groups = ...> (model config moe.groups) to a multiple of 8

// No training step.
// expected-error @+1 {{moe-partition: expected a function @train_step to partition (run --moe-training-pipeline first), found none}}
module {
  func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
    return %x : tensor<4xf32>
  }
}

// -----

// Partitioned twice.
// expected-error @+1 {{moe-partition: expected a module that is not partitioned yet, found a symbol @grid (moe-partition already ran)}}
module {
  shard.grid @grid(shape = 2x2x2)
  func.func @train_step(%x: tensor<4xf32>) -> tensor<4xf32> {
    return %x : tensor<4xf32>
  }
}

// -----

// 3 experts cannot be split over ep = 2 (the error points at the
// parameter's first use).
func.func @train_step(%w: tensor<3x4x8xf32> {moe.param = "experts.w1"},
                      %m: tensor<3x4x8xf32> {moe.opt_state = "exp_avg", moe.state_of = "experts.w1"},
                      %v: tensor<3x4x8xf32> {moe.opt_state = "exp_avg_sq", moe.state_of = "experts.w1"},
                      %lr: tensor<f32>, %step: tensor<i64> {moe.input = "step"})
    -> tensor<3x4x8xf32> {
  // expected-error @+1 {{moe-partition: expected the experts of 'experts.w1' (dimension 0 of 'tensor<3x4x8xf32>') to be divisible by ep = 2, found 3 experts}}
  %p, %m2, %v2 = moe.adamw expert %w, %w, %m, %v, %lr, %lr, %step
      {beta1 = 0.9 : f64, beta2 = 0.98 : f64, epsilon = 1.0e-8 : f64, weight_decay = 0.0 : f64}
      : tensor<3x4x8xf32>, tensor<f32>, tensor<i64>
  return %p : tensor<3x4x8xf32>
}

// -----

// 3 heads cannot be split over tp = 2.
func.func @train_step(%x: tensor<4x2x6xf32> {moe.input = "x"},
                      %wq: tensor<6x6xf32> {moe.param = "q"},
                      %wk: tensor<6x6xf32> {moe.param = "k"},
                      %wv: tensor<6x6xf32> {moe.param = "v"},
                      %wo: tensor<6x6xf32> {moe.param = "out"}) -> tensor<4x2x6xf32> {
  %q = moe.linear %x, %wq : (tensor<4x2x6xf32>, tensor<6x6xf32>) -> tensor<4x2x6xf32>
  %k = moe.linear %x, %wk : (tensor<4x2x6xf32>, tensor<6x6xf32>) -> tensor<4x2x6xf32>
  %v = moe.linear %x, %wv : (tensor<4x2x6xf32>, tensor<6x6xf32>) -> tensor<4x2x6xf32>
  // expected-error @+1 {{moe-partition: expected num_heads to be divisible by tp = 2, found num_heads = 3}}
  %a = moe.attention %q, %k, %v {num_heads = 3 : i64}
      : (tensor<4x2x6xf32>, tensor<4x2x6xf32>, tensor<4x2x6xf32>) -> tensor<4x2x6xf32>
  %o = moe.linear %a, %wo : (tensor<4x2x6xf32>, tensor<6x6xf32>) -> tensor<4x2x6xf32>
  return %o : tensor<4x2x6xf32>
}

// -----

// A column-parallel FFN whose hidden size 5 cannot be split over tp = 2.
func.func @train_step(%x: tensor<4x2x4xf32> {moe.input = "x"},
                      %w1: tensor<4x5xf32> {moe.param = "fc1"},
                      %w2: tensor<5x4xf32> {moe.param = "fc2"}) -> tensor<4x2x4xf32> {
  // expected-error @+1 {{moe-partition: expected dimension 1 of 'fc1' ('tensor<4x5xf32>', the output features of a column-parallel linear) to be divisible by tp = 2, found 5}}
  %h = moe.linear %x, %w1 : (tensor<4x2x4xf32>, tensor<4x5xf32>) -> tensor<4x2x5xf32>
  %a = moe.activation relu %h : tensor<4x2x5xf32>
  %y = moe.linear %a, %w2 : (tensor<4x2x5xf32>, tensor<5x4xf32>) -> tensor<4x2x4xf32>
  return %y : tensor<4x2x4xf32>
}

// -----

// A batch of 6 sequences cannot be split over dp x ep = 4 token shards.
func.func @train_step(%tokens: tensor<6x4xi32> {moe.input = "src_tokens"}) -> tensor<6x4xi32> {
  // expected-error @+1 {{moe-partition: expected the batch size of input 'src_tokens' to be divisible by the 4 token shards (dp x ep = 2 x 2), found 6}}
  return %tokens : tensor<6x4xi32>
}

// -----

// 2 gating groups cannot be split over 4 token shards.
func.func @train_step(%x: tensor<8x4x16xf32> {moe.input = "x"},
                      %wg: tensor<16x4xf32> {moe.param = "gate"}) -> tensor<8x4x2xf32> {
  // expected-error @+1 {{moe-partition: expected the gating groups to be a multiple of the 4 token shards (dp x ep = 2 x 2) so that each rank routes whole groups, found 2 group(s); set #moe.gating<groups = ...> (model config moe.groups) to a multiple of 4}}
  %idx, %loc, %w, %counts, %aux = moe.gate %x, %wg
      {capacity = 16 : i64, config = #moe.gating<top_k = 2, groups = 2>, stream = 0 : i64}
      : (tensor<8x4x16xf32>, tensor<16x4xf32>)
        -> (tensor<8x4x2xi32>, tensor<8x4x2xi32>, tensor<8x4x2xf32>, tensor<4xi32>, tensor<f32>)
  return %w : tensor<8x4x2xf32>
}

// -----

// Dropless gating sizes its buffers from the counts of all ranks.
func.func @train_step(%x: tensor<8x4x16xf32> {moe.input = "x"},
                      %wg: tensor<16x4xf32> {moe.param = "gate"}) -> tensor<8x4x2xf32> {
  // expected-error @+1 {{moe-partition: expected drop_tokens = true with tokens split over 4 ranks, found dropless gating (drop_tokens = false), which the partitioner does not support yet: its capacity depends on all ranks}}
  %idx, %loc, %w, %counts, %aux = moe.gate %x, %wg
      {capacity = 32 : i64, config = #moe.gating<top_k = 2, drop_tokens = false, groups = 4>, stream = 0 : i64}
      : (tensor<8x4x16xf32>, tensor<16x4xf32>)
        -> (tensor<8x4x2xi32>, tensor<8x4x2xi32>, tensor<8x4x2xf32>, tensor<4xi32>, tensor<f32>)
  return %w : tensor<8x4x2xf32>
}

// -----

// An optimizer state of a parameter the step does not have.
// expected-error @+1 {{moe-partition: expected the optimizer state argument #1 to belong to a parameter (moe.state_of), found 'b', which no argument's moe.param names}}
func.func @train_step(%w: tensor<4xf32> {moe.param = "a"},
                      %m: tensor<4xf32> {moe.opt_state = "exp_avg", moe.state_of = "b"}) -> tensor<4xf32> {
  return %w : tensor<4xf32>
}

// -----

// Arguments must be ranked tensors.
// expected-error @+1 {{moe-partition: expected ranked tensor arguments, found 'i64' for argument #1}}
func.func @train_step(%w: tensor<4xf32> {moe.param = "a"}, %n: i64) -> tensor<4xf32> {
  return %w : tensor<4xf32>
}

// -----

// Ops without a partitioning rule.
func.func @train_step(%x: tensor<4xf32> {moe.input = "x"}) -> tensor<4xf32> {
  // expected-error @+1 {{moe-partition: expected an op with a partitioning rule (moe ops, arith.constant), found 'arith.addf'}}
  %y = arith.addf %x, %x : tensor<4xf32>
  return %y : tensor<4xf32>
}
