// RUN: moe-opt %s --split-input-file --moe-differentiate | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-differentiate | moe-opt --split-input-file | FileCheck %s

// A linear layer under cross-entropy: the seed is d(loss) = 1, the gradient
// flows through cross_entropy_grad, linear_grad and bias_grad.
// CHECK-LABEL: func.func @forward_grad
// CHECK-SAME: (%[[X:.*]]: tensor<4x8xf32>, %[[W:.*]]: tensor<8x16xf32> {moe.param = "w"}, %[[B:.*]]: tensor<16xf32> {moe.param = "b"}, %[[L:.*]]: tensor<4xi32> {moe.input = "labels"})
// CHECK-SAME: -> (tensor<f32> {moe.role = "loss"}, tensor<8x16xf32> {moe.param = "w", moe.role = "grad"}, tensor<16xf32> {moe.param = "b", moe.role = "grad"})
// CHECK: %[[Y:.*]] = moe.linear %[[X]], %[[W]], %[[B]]
// CHECK: %[[LOSS:.*]] = moe.cross_entropy %[[Y]], %[[L]]
// CHECK: %[[ONE:.*]] = arith.constant dense<1.000000e+00> : tensor<f32>
// CHECK: %[[DY:.*]] = moe.cross_entropy_grad %[[ONE]], %[[Y]], %[[L]] {label_smoothing = 1.000000e-01 : f64}
// CHECK: %[[DX:.*]], %[[DW:.*]] = moe.linear_grad %[[DY]], %[[X]], %[[W]]
// CHECK: %[[DB:.*]] = moe.bias_grad %[[DY]] : tensor<4x16xf32> -> tensor<16xf32>
// CHECK: return %[[LOSS]], %[[DW]], %[[DB]]
func.func @forward(%x: tensor<4x8xf32>, %w: tensor<8x16xf32> {moe.param = "w"},
                   %b: tensor<16xf32> {moe.param = "b"},
                   %labels: tensor<4xi32> {moe.input = "labels"})
    -> (tensor<f32> {moe.role = "loss"}) {
  %y = moe.linear %x, %w, %b : (tensor<4x8xf32>, tensor<8x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  %loss = moe.cross_entropy %y, %labels {label_smoothing = 0.1 : f64}
      : (tensor<4x16xf32>, tensor<4xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// A residual connection and a tied embedding: the gradients of both uses of %h are summed; an
// unused parameter gets a zero gradient; dropout's gradient is the same
// dropout (same stream) applied to the incoming gradient.
// CHECK-LABEL: func.func @forward_grad
// CHECK: moe.activation_grad relu
// CHECK: %[[D1:.*]] = moe.dropout {{.*}}stream = 5 : i64
// CHECK: %[[DH:.*]], %[[DW:.*]] = moe.linear_grad
// CHECK: %[[SUM:.*]] = moe.add {{.*}}, %[[DH]] : tensor<2x8xf32>
// CHECK: %[[DE:.*]] = moe.embedding_grad %[[SUM]], %arg3 {scaled}
// The table is tied to the output projection: both gradients are summed.
// CHECK: %[[DT:.*]] = moe.add %{{.*}}, %[[DE]] : tensor<10x8xf32>
// CHECK: %[[ZERO:.*]] = arith.constant dense<0.000000e+00> : tensor<8xf32>
// CHECK: return %{{.*}}, %[[DT]], %[[DW]], %[[ZERO]]
func.func @forward(%table: tensor<10x8xf32> {moe.param = "table"},
                   %w: tensor<8x8xf32> {moe.param = "w"},
                   %unused: tensor<8xf32> {moe.param = "unused"},
                   %tokens: tensor<2xi32> {moe.input = "tokens"},
                   %labels: tensor<2xi32> {moe.input = "labels"})
    -> (tensor<f32> {moe.role = "loss"}) {
  %h = moe.embedding none %tokens, %table {scaled} : (tensor<2xi32>, tensor<10x8xf32>) -> tensor<2x8xf32>
  %f = moe.linear %h, %w : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %d = moe.dropout %f {rate = 0.1 : f64, stream = 5 : i64} : tensor<2x8xf32>
  %a = moe.activation relu %d : tensor<2x8xf32>
  %r = moe.add %h, %a : tensor<2x8xf32>
  %logits = moe.linear %r, %table {transpose_weight} : (tensor<2x8xf32>, tensor<10x8xf32>) -> tensor<2x10xf32>
  %loss = moe.cross_entropy %logits, %labels : (tensor<2x10xf32>, tensor<2xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// The MoE path: the aux loss is seeded with the coefficient (0.01), the
// gate receives the combine-weight and aux gradients; indices, slots and
// counts carry none.
// CHECK-LABEL: func.func @forward_grad
// CHECK-DAG: %[[COEF:.*]] = arith.constant dense<0.00999999977> : tensor<f32>
// CHECK: %[[DBUF:.*]], %[[DWTS:.*]] = moe.combine_grad
// CHECK: %[[DIN:.*]], %[[DW1:.*]], %[[DB1:.*]], %[[DW2:.*]], %[[DB2:.*]] = moe.expert_ffn_grad gelu
// CHECK: %[[DX1:.*]] = moe.dispatch_grad %[[DIN]]
// CHECK: %[[DX2:.*]], %[[DWG:.*]] = moe.gate_grad %[[DWTS]], %[[COEF]]
// CHECK-SAME: capacity = 8 : i64
// CHECK: return {{.*}}, %[[DWG]], %[[DW1]], %[[DB1]], %[[DW2]], %[[DB2]]
func.func @forward(%x: tensor<16x4xf32>, %wg: tensor<4x4xf32> {moe.param = "gate"},
                   %w1: tensor<4x4x8xf32> {moe.param = "w1"}, %b1: tensor<4x8xf32> {moe.param = "b1"},
                   %w2: tensor<4x8x4xf32> {moe.param = "w2"}, %b2: tensor<4x4xf32> {moe.param = "b2"},
                   %labels: tensor<16xi32> {moe.input = "labels"})
    -> (tensor<f32> {moe.role = "loss"}, tensor<f32> {moe.role = "aux_loss"},
        tensor<4xi32> {moe.role = "expert_counts"}) {
  %idx, %loc, %wts, %counts, %aux = moe.gate %x, %wg
      {capacity = 8 : i64, config = #moe.gating<top_k = 2>, stream = 0 : i64}
      : (tensor<16x4xf32>, tensor<4x4xf32>)
        -> (tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xf32>, tensor<4xi32>, tensor<f32>)
  %buf = moe.dispatch %x, %idx, %loc : (tensor<16x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>) -> tensor<4x8x4xf32>
  %out = moe.expert_ffn gelu %buf, %w1, %b1, %w2, %b2
      : (tensor<4x8x4xf32>, tensor<4x4x8xf32>, tensor<4x8xf32>, tensor<4x8x4xf32>, tensor<4x4xf32>) -> tensor<4x8x4xf32>
  %y = moe.combine %out, %idx, %loc, %wts
      : (tensor<4x8x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xf32>) -> tensor<16x4xf32>
  %loss = moe.cross_entropy %y, %labels : (tensor<16x4xf32>, tensor<16xi32>) -> tensor<f32>
  return %loss, %aux, %counts : tensor<f32>, tensor<f32>, tensor<4xi32>
}
