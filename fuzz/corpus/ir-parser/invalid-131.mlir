func.func @expert_ffn_element_type(%x: tensor<4x8x16xbf16>, %w1: tensor<4x16x64xbf16>, %b1: tensor<4x64xbf16>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xbf16>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects all floating-point operands and results to have element type 'bf16', found 'f32'}}
  %0 = moe.expert_ffn gelu %x, %w1, %b1, %w2, %b2 : (tensor<4x8x16xbf16>, tensor<4x16x64xbf16>, tensor<4x64xbf16>, tensor<4x64x16xf32>, tensor<4x16xbf16>) -> tensor<4x8x16xbf16>
  return
}
