func.func @gate_capacity_groups_dropless(%x: tensor<4x8x16xf32>, %wg: tensor<16x4xf32>) {
  // Dropless: each of the 2 groups may need all of its 16 tokens.
  // expected-error @+1 {{'moe.gate' op capacity 16 does not match the gating configuration: 32 tokens in 2 groups, 4 experts and top_k = 2 give 2 x 16 = 32 in training mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 16 : i64, config = #moe.gating<top_k = 2, drop_tokens = false, groups = 2>, stream = 0 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x2xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>, tensor<4xi32>, tensor<f32>)
  return
}
