func.func @linear_features_transposed(%x: tensor<4x16xf32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.linear' op expects input features 16 to match weight dimension 1 (8), weight is 16x8}}
  %0 = moe.linear %x, %w {transpose_weight} : (tensor<4x16xf32>, tensor<16x8xf32>) -> tensor<4x16xf32>
  return
}
