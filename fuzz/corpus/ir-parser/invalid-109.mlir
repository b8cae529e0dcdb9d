func.func @dispatch_indices_rank(%x: tensor<32x16xf32>, %i: tensor<32xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects indices of shape 32xk (the token dimensions), found 32}}
  %0 = moe.dispatch %x, %i, %i : (tensor<32x16xf32>, tensor<32xi32>, tensor<32xi32>) -> tensor<4x8x16xf32>
  return
}
