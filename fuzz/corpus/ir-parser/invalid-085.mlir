func.func @gate_top_k_exceeds_experts(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op gating top_k = 5 exceeds the number of experts 4}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 32 : i64, config = #moe.gating<top_k = 5>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x5xi32>, tensor<32x5xi32>, tensor<32x5xf32>, tensor<4xi32>, tensor<f32>)
  return
}
