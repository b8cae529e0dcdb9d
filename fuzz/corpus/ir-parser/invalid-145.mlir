func.func @moe_layer_groups_do_not_divide_tokens(%x: tensor<3x10x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op gating groups = 4 does not divide the 30 tokens of input 3x10x16}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<groups = 4>, stream = 0 : i64} : (tensor<3x10x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<3x10x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}
