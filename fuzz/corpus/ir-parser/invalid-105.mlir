func.func @gate_missing_capacity(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op requires attribute 'capacity'}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
