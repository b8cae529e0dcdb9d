// RUN: moe-opt %s --split-input-file --moe-mixed-precision=compute=fp16 --verify-diagnostics
// RUN: not moe-opt %s --moe-mixed-precision=compute=fp8 2>&1 | FileCheck %s --check-prefix=OPTION
// OPTION: Cannot find option named 'fp8'

// The router stays fp32: a marked gate is rejected.
func.func @gate(%x: tensor<4x16x64xf32>, %wg: tensor<64x8xf32>) -> tensor<f32> {
  // expected-error @+1 {{has a compute_type, but only moe.linear, moe.attention, moe.expert_ffn and their gradient ops run in reduced precision}}
  %idx, %loc, %w, %counts, %aux = moe.gate %x, %wg
      {capacity = 16 : i64, config = #moe.gating<top_k = 2>, stream = 0 : i64, compute_type = bf16}
      : (tensor<4x16x64xf32>, tensor<64x8xf32>)
        -> (tensor<4x16x2xi32>, tensor<4x16x2xi32>, tensor<4x16x2xf32>, tensor<8xi32>, tensor<f32>)
  return %aux : tensor<f32>
}

// -----

// So does the loss.
func.func @loss(%y: tensor<2x4xf32>, %labels: tensor<2xi32>) -> tensor<f32> {
  // expected-error @+1 {{has a compute_type, but only}}
  %l = moe.cross_entropy %y, %labels {compute_type = f16} : (tensor<2x4xf32>, tensor<2xi32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

func.func @wrong_type(%x: tensor<2x8xf32>, %w: tensor<8x4xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{compute_type must be f32, bf16 or f16, found i32}}
  %y = moe.linear %x, %w {compute_type = i32} : (tensor<2x8xf32>, tensor<8x4xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

func.func @not_a_type(%x: tensor<2x8xf32>, %w: tensor<8x4xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{compute_type must be f32, bf16 or f16, found "bf16"}}
  %y = moe.linear %x, %w {compute_type = "bf16"} : (tensor<2x8xf32>, tensor<8x4xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

// fp16 loss scaling needs the clipping op of moe-build-train-step.
// expected-error @+1 {{moe-mixed-precision: fp16 loss scaling needs exactly one moe.clip_by_global_norm in @train_step (built by moe-build-train-step), found 0}}
func.func @train_step(%y: tensor<2x4xf32>, %labels: tensor<2xi32>) -> tensor<2x4xf32> {
  %one = arith.constant dense<1.0> : tensor<f32>
  %g = moe.cross_entropy_grad %one, %y, %labels : (tensor<f32>, tensor<2x4xf32>, tensor<2xi32>) -> tensor<2x4xf32>
  return %g : tensor<2x4xf32>
}
