func.func @gate_capacity_training(%x: tensor<4x8x16xf32>, %wg: tensor<16x4xf32>) {
  // ceil(32 / 4 * 1.25 * 2) = 20.
  // expected-error @+1 {{'moe.gate' op capacity 16 does not match the gating configuration: 32 tokens, 4 experts and top_k = 2 give 20 in training mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 16 : i64, config = #moe.gating<top_k = 2, capacity_factor = 1.25>, stream = 0 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x2xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>, tensor<4xi32>, tensor<f32>)
  return
}
