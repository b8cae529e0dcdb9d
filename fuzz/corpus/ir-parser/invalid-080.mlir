func.func @gate_dynamic_result(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op result #1 must have a static shape, found 'tensor<?x1xi32>'}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<?x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
