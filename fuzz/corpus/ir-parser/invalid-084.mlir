func.func @gate_no_experts(%x: tensor<32x16xf32>, %wg: tensor<16x0xf32>) {
  // expected-error @+1 {{'moe.gate' op expects at least one expert, found 0}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x0xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<0xi32>, tensor<f32>)
  return
}
