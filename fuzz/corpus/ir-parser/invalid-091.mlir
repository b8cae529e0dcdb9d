func.func @gate_expert_counts_shape(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects expert_counts of shape 4, found 8}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<8xi32>, tensor<f32>)
  return
}
