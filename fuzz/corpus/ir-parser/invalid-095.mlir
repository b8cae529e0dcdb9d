func.func @gate_capacity_dropless(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // Dropless routing bounds the capacity by every token.
  // expected-error @+1 {{'moe.gate' op capacity 8 does not match the gating configuration: 32 tokens, 4 experts and top_k = 1 give 32 in training mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<drop_tokens = false>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
