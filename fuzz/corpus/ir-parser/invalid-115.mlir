func.func @dispatch_two_gates(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  %i2, %l2, %w2, %c2, %a2 = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 1 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  // expected-error @+1 {{'moe.dispatch' op expects indices and locations from the same moe.gate}}
  %0 = moe.dispatch %x, %i, %l2 : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x8x16xf32>
  return
}
