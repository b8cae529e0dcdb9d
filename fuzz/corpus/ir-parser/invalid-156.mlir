func.func @moe_layer_b2_shape(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x64xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects b2 of shape 4x16, found 4x64}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x64xf32>) -> (tensor<32x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}
