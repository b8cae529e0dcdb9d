func.func @combine_result_rank(%y: tensor<4x8x16xf32>, %i: tensor<1xi32>, %w: tensor<1xf32>) {
  // expected-error @+1 {{'moe.combine' op expects result of shape [tokens...]x16 (model width of the input), found 16}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xf32>, tensor<1xi32>, tensor<1xi32>, tensor<1xf32>) -> tensor<16xf32>
  return
}
