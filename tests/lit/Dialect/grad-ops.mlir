// Round trip of the backward and optimizer ops.
// RUN: moe-opt %s | FileCheck %s
// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s

// CHECK-LABEL: func.func @dense_grads
func.func @dense_grads(%dy: tensor<2x4x8xf32>, %x: tensor<2x4x6xf32>, %w: tensor<6x8xf32>,
                       %wt: tensor<8x6xf32>, %h: tensor<2x4x6xf32>, %g: tensor<6xf32>,
                       %tokens: tensor<2x4xi32>, %mask: tensor<2x4xi1>, %dl: tensor<f32>,
                       %logits: tensor<2x4x8xf32>, %labels: tensor<2x4xi32>) {
  // CHECK: %{{.*}}, %{{.*}} = moe.linear_grad %arg0, %arg1, %arg2 : (tensor<2x4x8xf32>, tensor<2x4x6xf32>, tensor<6x8xf32>) -> (tensor<2x4x6xf32>, tensor<6x8xf32>)
  %dx, %dw = moe.linear_grad %dy, %x, %w : (tensor<2x4x8xf32>, tensor<2x4x6xf32>, tensor<6x8xf32>) -> (tensor<2x4x6xf32>, tensor<6x8xf32>)
  // CHECK: moe.linear_grad %arg0, %arg1, %arg3 {transpose_weight}
  %dx2, %dwt = moe.linear_grad %dy, %x, %wt {transpose_weight} : (tensor<2x4x8xf32>, tensor<2x4x6xf32>, tensor<8x6xf32>) -> (tensor<2x4x6xf32>, tensor<8x6xf32>)
  // CHECK: moe.bias_grad %arg0 : tensor<2x4x8xf32> -> tensor<8xf32>
  %db = moe.bias_grad %dy : tensor<2x4x8xf32> -> tensor<8xf32>
  // CHECK: moe.layer_norm_grad %arg4, %arg1, %arg5 {epsilon = 9.9999999999999995E-7 : f64}
  %a, %b, %c = moe.layer_norm_grad %h, %x, %g {epsilon = 1.0e-6 : f64} : (tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<6xf32>) -> (tensor<2x4x6xf32>, tensor<6xf32>, tensor<6xf32>)
  // CHECK: moe.activation_grad gelu_tanh %arg4, %arg1 : tensor<2x4x6xf32>
  %da = moe.activation_grad gelu_tanh %h, %x : tensor<2x4x6xf32>
  // CHECK: moe.attention_grad %arg4, %arg1, %arg1, %arg1 key_mask %arg7 {causal, num_heads = 2 : i64}
  %dq, %dk, %dv = moe.attention_grad %h, %x, %x, %x key_mask %mask {num_heads = 2 : i64, causal}
      : (tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x4xi1>)
        -> (tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x4x6xf32>)
  // CHECK: moe.cross_entropy_grad %arg8, %arg9, %arg10 {ignore_index = 0 : i64, label_smoothing = 1.000000e-01 : f64}
  %dlog = moe.cross_entropy_grad %dl, %logits, %labels {label_smoothing = 0.1 : f64, ignore_index = 0 : i64}
      : (tensor<f32>, tensor<2x4x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  // CHECK: moe.embedding_grad %arg4, %arg6 {scaled} : (tensor<2x4x6xf32>, tensor<2x4xi32>) -> tensor<100x6xf32>
  %dt = moe.embedding_grad %h, %tokens {scaled} : (tensor<2x4x6xf32>, tensor<2x4xi32>) -> tensor<100x6xf32>
  // CHECK: moe.position_grad %arg4 : tensor<2x4x6xf32> -> tensor<16x6xf32>
  %dp = moe.position_grad %h : tensor<2x4x6xf32> -> tensor<16x6xf32>
  return
}

// CHECK-LABEL: func.func @moe_grads
func.func @moe_grads(%dw: tensor<16x2xf32>, %daux: tensor<f32>, %x: tensor<16x4xf32>,
                     %wg: tensor<4x4xf32>, %idx: tensor<16x2xi32>, %loc: tensor<16x2xi32>,
                     %dbuf: tensor<4x8x4xf32>, %w1: tensor<4x4x8xf32>, %b1: tensor<4x8xf32>,
                     %w2: tensor<4x8x4xf32>, %b2: tensor<4x4xf32>) {
  // CHECK: moe.gate_grad %arg0, %arg1, %arg2, %arg3, %arg4, %arg5 {capacity = 8 : i64, config = #moe.gating<top_k = 2>, stream = 3 : i64}
  %dx, %dwg = moe.gate_grad %dw, %daux, %x, %wg, %idx, %loc
      {capacity = 8 : i64, config = #moe.gating<top_k = 2>, stream = 3 : i64}
      : (tensor<16x2xf32>, tensor<f32>, tensor<16x4xf32>, tensor<4x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>)
        -> (tensor<16x4xf32>, tensor<4x4xf32>)
  // CHECK: moe.dispatch_grad %arg6, %arg4, %arg5 : (tensor<4x8x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>) -> tensor<16x4xf32>
  %dx2 = moe.dispatch_grad %dbuf, %idx, %loc : (tensor<4x8x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>) -> tensor<16x4xf32>
  // CHECK: moe.combine_grad %arg2, %arg6, %arg4, %arg5, %arg0
  %db, %dwts = moe.combine_grad %x, %dbuf, %idx, %loc, %dw
      : (tensor<16x4xf32>, tensor<4x8x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xf32>)
        -> (tensor<4x8x4xf32>, tensor<16x2xf32>)
  // CHECK: moe.expert_ffn_grad silu %arg6, %arg6, %arg7, %arg8, %arg9, %arg10
  %a, %b, %c, %d, %e = moe.expert_ffn_grad silu %dbuf, %dbuf, %w1, %b1, %w2, %b2
      : (tensor<4x8x4xf32>, tensor<4x8x4xf32>, tensor<4x4x8xf32>, tensor<4x8xf32>, tensor<4x8x4xf32>, tensor<4x4xf32>)
        -> (tensor<4x8x4xf32>, tensor<4x4x8xf32>, tensor<4x8xf32>, tensor<4x8x4xf32>, tensor<4x4xf32>)
  return
}

// CHECK-LABEL: func.func @optimizer
func.func @optimizer(%p: tensor<4x4xf32>, %g: tensor<4x4xf32>, %m: tensor<4x4xf32>,
                     %v: tensor<4x4xf32>, %step: tensor<i64>) {
  // CHECK: moe.sum_squares expert %arg1 : tensor<4x4xf32> -> tensor<f32>
  %s = moe.sum_squares expert %g : tensor<4x4xf32> -> tensor<f32>
  // CHECK: moe.clip_by_global_norm %{{.*}} {max_norm = 1.000000e+00 : f64} : tensor<f32> -> (tensor<f32>, tensor<f32>)
  %norm, %scale = moe.clip_by_global_norm %s {max_norm = 1.0 : f64} : tensor<f32> -> (tensor<f32>, tensor<f32>)
  // CHECK: moe.lr_schedule %arg4 {peak_lr = 1.000000e-03 : f64, warmup_steps = 100 : i64} : tensor<i64> -> tensor<f32>
  %lr = moe.lr_schedule %step {peak_lr = 1.0e-3 : f64, warmup_steps = 100 : i64} : tensor<i64> -> tensor<f32>
  // CHECK: moe.adamw dense %arg0, %arg1, %arg2, %arg3, %{{.*}}, %{{.*}}, %arg4 {beta1 = 9.000000e-01 : f64, beta2 = 0.99899999999999999 : f64, epsilon = 1.000000e-08 : f64, weight_decay = 1.000000e-02 : f64} : tensor<4x4xf32>, tensor<f32>, tensor<i64>
  %p2, %m2, %v2 = moe.adamw dense %p, %g, %m, %v, %lr, %scale, %step
      {beta1 = 0.9 : f64, beta2 = 0.999 : f64, epsilon = 1.0e-8 : f64, weight_decay = 0.01 : f64}
      : tensor<4x4xf32>, tensor<f32>, tensor<i64>
  return
}

// E+Z-Offload: a master weight kept in host memory and its bf16 device
// copy, converted both ways.
// CHECK-LABEL: func.func @offload
// CHECK-SAME: moe.param = "w", moe.placement = "host"
// CHECK-SAME: moe.device_copy = "w"
func.func @offload(%w: tensor<4x8xf32> {moe.param = "w", moe.placement = "host"},
                   %c: tensor<4x8xbf16> {moe.device_copy = "w"},
                   %g: tensor<4x8xf32> {moe.grad_buffer = "w", moe.placement = "host"})
    -> (tensor<4x8xbf16> {moe.role = "new_device_copy", moe.device_copy = "w"}) {
  // CHECK: moe.convert %arg1 : tensor<4x8xbf16> -> tensor<4x8xf32>
  %view = moe.convert %c : tensor<4x8xbf16> -> tensor<4x8xf32>
  // CHECK: moe.convert %arg0 : tensor<4x8xf32> -> tensor<4x8xf16>
  %h = moe.convert %w : tensor<4x8xf32> -> tensor<4x8xf16>
  // CHECK: moe.convert %arg0 : tensor<4x8xf32> -> tensor<4x8xbf16>
  %new = moe.convert %w : tensor<4x8xf32> -> tensor<4x8xbf16>
  // CHECK: moe.to_host %{{.*}} into %arg2 : tensor<4x8xf32>
  %gh = moe.to_host %view into %g : tensor<4x8xf32>
  return %new : tensor<4x8xbf16>
}
