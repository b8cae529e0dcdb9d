func.func @moe_layer_gate_weight_model_dim(%x: tensor<32x16xf32>, %wg: tensor<4x16xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects gate weight of shape 16xE (model width of the input), found 4x16}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<4x16xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<32x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}
