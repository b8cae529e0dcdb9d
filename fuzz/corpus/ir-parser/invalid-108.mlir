func.func @dispatch_indices_tokens(%x: tensor<4x8x16xf32>, %i: tensor<32x1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects indices of shape 4x8xk (the token dimensions), found 32x1}}
  %0 = moe.dispatch %x, %i, %i : (tensor<4x8x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x8x16xf32>
  return
}
