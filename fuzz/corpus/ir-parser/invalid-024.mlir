func.func @linear_bias_shape_transposed(%x: tensor<4x16xf32>, %w: tensor<8x16xf32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{'moe.linear' op expects bias of shape 8, found 16}}
  %0 = moe.linear %x, %w, %b {transpose_weight} : (tensor<4x16xf32>, tensor<8x16xf32>, tensor<16xf32>) -> tensor<4x8xf32>
  return
}
