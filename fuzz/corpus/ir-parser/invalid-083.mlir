func.func @gate_weight_model_dim(%x: tensor<32x16xf32>, %wg: tensor<8x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects gate weight of shape 16xE (model width of the input), found 8x4}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<8x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
