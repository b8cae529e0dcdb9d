func.func @expert_ffn_w2_shape(%x: tensor<4x8x16xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x16x64xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects w2 of shape 4x64x16, found 4x16x64}}
  %0 = moe.expert_ffn gelu %x, %w1, %b1, %w2, %b2 : (tensor<4x8x16xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x16x64xf32>, tensor<4x16xf32>) -> tensor<4x8x16xf32>
  return
}
