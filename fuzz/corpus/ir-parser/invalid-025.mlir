func.func @linear_result_shape(%x: tensor<2x4x16xf32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.linear' op expects result of shape 2x4x8, found 8x8}}
  %0 = moe.linear %x, %w : (tensor<2x4x16xf32>, tensor<16x8xf32>) -> tensor<8x8xf32>
  return
}
