func.func @dispatch_input_rank(%x: tensor<16xf32>, %i: tensor<1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects input of rank >= 2 ([tokens..., model]), found 16}}
  %0 = moe.dispatch %x, %i, %i : (tensor<16xf32>, tensor<1xi32>, tensor<1xi32>) -> tensor<4x8x16xf32>
  return
}
