func.func @linear_features(%x: tensor<4x16xf32>, %w: tensor<32x8xf32>) {
  // expected-error @+1 {{'moe.linear' op expects input features 16 to match weight dimension 0 (32), weight is 32x8}}
  %0 = moe.linear %x, %w : (tensor<4x16xf32>, tensor<32x8xf32>) -> tensor<4x8xf32>
  return
}
