// RUN: moe-opt %s --split-input-file --moe-differentiate --verify-diagnostics

// expected-error @+1 {{has no result with moe.role = "loss"}}
func.func @forward(%x: tensor<4x8xf32>, %labels: tensor<4xi32>) -> tensor<f32> {
  %loss = moe.cross_entropy %x, %labels : (tensor<4x8xf32>, tensor<4xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

func.func @forward(%x: tensor<16x4xf32>, %wg: tensor<4x4xf32>, %w1: tensor<4x4x8xf32>,
                   %b1: tensor<4x8xf32>, %w2: tensor<4x8x4xf32>, %b2: tensor<4x4xf32>,
                   %labels: tensor<16xi32>) -> (tensor<f32> {moe.role = "loss"}) {
  // expected-error @+1 {{must be expanded before differentiation}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2
      {config = #moe.gating<>, stream = 0 : i64}
      : (tensor<16x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8xf32>,
         tensor<4x8x4xf32>, tensor<4x4xf32>) -> (tensor<16x4xf32>, tensor<4xi32>, tensor<f32>)
  %loss = moe.cross_entropy %y, %labels : (tensor<16x4xf32>, tensor<16xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

func.func @forward(%x: tensor<4x8xf32> {moe.param = "x"}, %labels: tensor<4xi32>)
    -> (tensor<f32> {moe.role = "loss"}) {
  // expected-error @+1 {{is on the path to the loss but has no gradient rule}}
  %y = arith.mulf %x, %x : tensor<4x8xf32>
  %loss = moe.cross_entropy %y, %labels : (tensor<4x8xf32>, tensor<4xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// expected-error @+1 {{no function @forward to differentiate}}
module {
  func.func @model() {
    return
  }
}
