func.func @combine_weights_shape(%y: tensor<4x8x16xf32>, %i: tensor<32x2xi32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'moe.combine' op expects indices, locations and weights of one shape, found 32x2 and 32x1}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xf32>, tensor<32x2xi32>, tensor<32x2xi32>, tensor<32x1xf32>) -> tensor<32x16xf32>
  return
}
