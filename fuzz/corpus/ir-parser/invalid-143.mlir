func.func @combine_bf16_weights(%y: tensor<4x8x16xbf16>, %i: tensor<32x1xi32>, %w: tensor<32x1xbf16>) {
  // expected-error @+1 {{'moe.combine' op operand #3 must be ranked tensor of 32-bit float values, but got 'tensor<32x1xbf16>'}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xbf16>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xbf16>) -> tensor<32x16xbf16>
  return
}
