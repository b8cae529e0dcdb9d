func.func @combine_indices_tokens(%y: tensor<4x8x16xf32>, %i: tensor<16x1xi32>, %w: tensor<16x1xf32>) {
  // expected-error @+1 {{'moe.combine' op expects indices of shape 32xk (the token dimensions), found 16x1}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xf32>, tensor<16x1xi32>, tensor<16x1xi32>, tensor<16x1xf32>) -> tensor<32x16xf32>
  return
}
