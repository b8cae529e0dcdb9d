func.func @gate_capacity_capped(%x: tensor<8x16xf32>, %wg: tensor<16x4xf32>) {
  // ceil(8 / 4 * 10.0 * 2) = 40 is capped at the 8 tokens.
  // expected-error @+1 {{'moe.gate' op capacity 40 does not match the gating configuration: 8 tokens, 4 experts and top_k = 2 give 8 in training mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 40 : i64, config = #moe.gating<top_k = 2, capacity_factor = 10.0>, stream = 0 : i64} : (tensor<8x16xf32>, tensor<16x4xf32>) -> (tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>, tensor<4xi32>, tensor<f32>)
  return
}
