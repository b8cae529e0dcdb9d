func.func @gate_bf16_weights(%x: tensor<32x16xbf16>, %wg: tensor<16x4xbf16>) {
  // expected-error @+1 {{'moe.gate' op result #2 must be ranked tensor of 32-bit float values, but got 'tensor<32x1xbf16>'}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xbf16>, tensor<16x4xbf16>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xbf16>, tensor<4xi32>, tensor<f32>)
  return
}
