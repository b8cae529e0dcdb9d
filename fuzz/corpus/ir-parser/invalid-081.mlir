func.func @gate_input_rank(%x: tensor<16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects input of rank >= 2 ([tokens..., model]), found 16}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 1 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<16xf32>, tensor<16x4xf32>) -> (tensor<1xi32>, tensor<1xi32>, tensor<1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
