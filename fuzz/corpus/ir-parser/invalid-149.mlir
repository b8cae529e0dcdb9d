func.func @moe_layer_no_experts(%x: tensor<32x16xf32>, %wg: tensor<16x0xf32>, %w1: tensor<0x16x64xf32>, %b1: tensor<0x64xf32>, %w2: tensor<0x64x16xf32>, %b2: tensor<0x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects at least one expert, found 0}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x0xf32>, tensor<0x16x64xf32>, tensor<0x64xf32>, tensor<0x64x16xf32>, tensor<0x16xf32>) -> (tensor<32x16xf32>, tensor<0xi32>, tensor<f32>)
  return
}
