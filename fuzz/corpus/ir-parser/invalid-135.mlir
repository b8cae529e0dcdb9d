func.func @combine_result_width(%y: tensor<4x8x16xf32>, %i: tensor<32x1xi32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'moe.combine' op expects result of shape [tokens...]x16 (model width of the input), found 32x8}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>) -> tensor<32x8xf32>
  return
}
