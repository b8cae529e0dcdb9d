// RUN: moe-opt %s --split-input-file --moe-differentiate --moe-build-train-step="lr=0.001 warmup-steps=10 weight-decay=0.1 clip-norm=2.0" | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-differentiate --moe-build-train-step | moe-opt --split-input-file | FileCheck %s --check-prefix=DEFAULTS

// Parameters, then both AdamW moments per parameter, then the batch, then the
// step; results: forward results, metrics, new parameters, new moments.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: (%[[W:.*]]: tensor<8x4xf32> {moe.param = "w"}, %[[B:.*]]: tensor<4xf32> {moe.param = "b"},
// CHECK-SAME: %[[MW:.*]]: tensor<8x4xf32> {moe.opt_state = "exp_avg", moe.state_of = "w"}, %[[MB:.*]]: tensor<4xf32> {moe.opt_state = "exp_avg", moe.state_of = "b"},
// CHECK-SAME: %[[VW:.*]]: tensor<8x4xf32> {moe.opt_state = "exp_avg_sq", moe.state_of = "w"}, %[[VB:.*]]: tensor<4xf32> {moe.opt_state = "exp_avg_sq", moe.state_of = "b"},
// CHECK-SAME: %[[X:.*]]: tensor<2x8xf32> {moe.input = "x"}, %[[L:.*]]: tensor<2xi32> {moe.input = "labels"}, %[[STEP:.*]]: tensor<i64> {moe.input = "step"})
// CHECK-SAME: -> (tensor<f32> {moe.role = "loss"}, tensor<f32> {moe.name = "grad_norm", moe.role = "metric"}, tensor<f32> {moe.name = "lr", moe.role = "metric"},
// CHECK-SAME: tensor<8x4xf32> {moe.param = "w", moe.role = "new_param"}, tensor<4xf32> {moe.param = "b", moe.role = "new_param"},
// CHECK-SAME: tensor<8x4xf32> {moe.opt_state = "exp_avg", moe.role = "new_state", moe.state_of = "w"}
// CHECK: %[[DX:.*]], %[[DW:.*]] = moe.linear_grad
// CHECK: %[[DB:.*]] = moe.bias_grad
// CHECK: %[[SW:.*]] = moe.sum_squares dense %[[DW]] : tensor<8x4xf32> -> tensor<f32>
// CHECK: %[[SB:.*]] = moe.sum_squares dense %[[DB]] : tensor<4xf32> -> tensor<f32>
// CHECK: %[[S:.*]] = moe.add %[[SW]], %[[SB]]
// CHECK: %[[NORM:.*]], %[[SCALE:.*]] = moe.clip_by_global_norm %[[S]] {max_norm = 2.000000e+00 : f64}
// CHECK: %[[LR:.*]] = moe.lr_schedule %[[STEP]] {peak_lr = 1.000000e-03 : f64, warmup_steps = 10 : i64}
// Matrices are decayed, vectors are not.
// CHECK: %[[NW:.*]], %[[NMW:.*]], %[[NVW:.*]] = moe.adamw dense %[[W]], %[[DW]], %[[MW]], %[[VW]], %[[LR]], %[[SCALE]], %[[STEP]]
// CHECK-SAME: weight_decay = 1.000000e-01 : f64
// CHECK: %[[NB:.*]], %[[NMB:.*]], %[[NVB:.*]] = moe.adamw dense %[[B]], %[[DB]], %[[MB]], %[[VB]], %[[LR]], %[[SCALE]], %[[STEP]]
// CHECK-SAME: weight_decay = 0.000000e+00 : f64
// CHECK: return %{{.*}}, %[[NORM]], %[[LR]], %[[NW]], %[[NB]], %[[NMW]], %[[NMB]], %[[NVW]], %[[NVB]]

// DEFAULTS-LABEL: func.func @train_step
// DEFAULTS: moe.clip_by_global_norm {{.*}}max_norm = 1.000000e+00 : f64
// DEFAULTS: moe.lr_schedule {{.*}}{peak_lr = 5.000000e-04 : f64, warmup_steps = 4000 : i64}
// DEFAULTS: moe.adamw {{.*}}{beta1 = 9.000000e-01 : f64, beta2 = 0.97999999999999998 : f64, epsilon = 1.000000e-08 : f64, weight_decay = 0.000000e+00 : f64}
func.func @forward(%w: tensor<8x4xf32> {moe.param = "w"}, %b: tensor<4xf32> {moe.param = "b"},
                   %x: tensor<2x8xf32> {moe.input = "x"},
                   %labels: tensor<2xi32> {moe.input = "labels"})
    -> (tensor<f32> {moe.role = "loss"}) {
  %y = moe.linear %x, %w, %b : (tensor<2x8xf32>, tensor<8x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  %loss = moe.cross_entropy %y, %labels : (tensor<2x4xf32>, tensor<2xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Expert weights form their own group for the norm and the update: one
// partial sum per group, added last.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[SD:.*]] = moe.sum_squares dense {{.*}} : tensor<4x4xf32>
// CHECK: moe.sum_squares expert {{.*}} : tensor<4x4x8xf32>
// CHECK: moe.sum_squares expert {{.*}} : tensor<4x8xf32>
// CHECK: moe.sum_squares expert {{.*}} : tensor<4x8x4xf32>
// CHECK: moe.sum_squares expert {{.*}} : tensor<4x4xf32>
// CHECK: %[[SE:.*]] = moe.add
// CHECK: moe.add %[[SD]], %[[SE]]
// CHECK: moe.adamw dense {{.*}} : tensor<4x4xf32>
// CHECK-COUNT-4: moe.adamw expert
// DEFAULTS-LABEL: func.func @train_step
func.func @forward(%x: tensor<16x4xf32> {moe.input = "x"}, %wg: tensor<4x4xf32> {moe.param = "gate"},
                   %w1: tensor<4x4x8xf32> {moe.param = "w1"}, %b1: tensor<4x8xf32> {moe.param = "b1"},
                   %w2: tensor<4x8x4xf32> {moe.param = "w2"}, %b2: tensor<4x4xf32> {moe.param = "b2"},
                   %labels: tensor<16xi32> {moe.input = "labels"})
    -> (tensor<f32> {moe.role = "loss"}, tensor<f32> {moe.role = "aux_loss"}) {
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
  return %loss, %aux : tensor<f32>, tensor<f32>
}
