func.func @combine_capacity_vs_gate(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %y: tensor<4x32x16xf32>) {
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  // expected-error @+1 {{'moe.combine' op expects input with capacity 8 (from its moe.gate), found 32}}
  %0 = moe.combine %y, %i, %l, %w : (tensor<4x32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>) -> tensor<32x16xf32>
  return
}
