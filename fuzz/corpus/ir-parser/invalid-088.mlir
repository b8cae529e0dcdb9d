func.func @gate_indices_shape(%x: tensor<4x8x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects indices of shape 4x8x2, found 4x8x1}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 16 : i64, config = #moe.gating<top_k = 2>, stream = 0 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x1xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>, tensor<4xi32>, tensor<f32>)
  return
}
