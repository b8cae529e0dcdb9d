func.func @combine_input_rank(%y: tensor<32x16xf32>, %i: tensor<32x1xi32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'moe.combine' op expects input of rank 3, found rank 2 ('tensor<32x16xf32>')}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>) -> tensor<32x16xf32>
  return
}
