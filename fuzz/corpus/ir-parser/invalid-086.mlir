func.func @gate_no_tokens(%x: tensor<0x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects at least one token, found 0x16}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 1 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<0x16xf32>, tensor<16x4xf32>) -> (tensor<0x1xi32>, tensor<0x1xi32>, tensor<0x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
