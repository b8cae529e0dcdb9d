func.func @gate_capacity_min_capacity(%x: tensor<8x16xf32>, %wg: tensor<16x4xf32>) {
  // ceil(8 / 4) = 2 is lifted to min_capacity = 4.
  // expected-error @+1 {{'moe.gate' op capacity 2 does not match the gating configuration: 8 tokens, 4 experts and top_k = 1 give 4 in training mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 2 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<8x16xf32>, tensor<16x4xf32>) -> (tensor<8x1xi32>, tensor<8x1xi32>, tensor<8x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
