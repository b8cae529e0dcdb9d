func.func @cross_entropy_loss_not_scalar(%l: tensor<16x100xf32>, %y: tensor<16xi32>) {
  // expected-error @+1 {{'moe.cross_entropy' op result #0 must be 0D tensor of 32-bit float values, but got 'tensor<16xf32>'}}
  %0 = moe.cross_entropy %l, %y : (tensor<16x100xf32>, tensor<16xi32>) -> tensor<16xf32>
  return
}
