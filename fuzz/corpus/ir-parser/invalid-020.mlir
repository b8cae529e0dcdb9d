func.func @linear_scalar_input(%x: tensor<f32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.linear' op expects input of rank >= 1, found a scalar}}
  %0 = moe.linear %x, %w : (tensor<f32>, tensor<16x8xf32>) -> tensor<8xf32>
  return
}
