func.func @gate_groups_do_not_divide_tokens(%x: tensor<6x5x16xf32>, %wg: tensor<16x4xf32>) {
  // 30 tokens do not split into 4 equal gating groups.
  // expected-error @+1 {{'moe.gate' op gating groups = 4 does not divide the 30 tokens of input 6x5x16}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 16 : i64, config = #moe.gating<groups = 4>, stream = 0 : i64} : (tensor<6x5x16xf32>, tensor<16x4xf32>) -> (tensor<6x5x1xi32>, tensor<6x5x1xi32>, tensor<6x5x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
