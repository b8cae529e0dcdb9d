func.func @cross_entropy_loss_bf16(%l: tensor<16x100xbf16>, %y: tensor<16xi32>) {
  // expected-error @+1 {{'moe.cross_entropy' op result #0 must be 0D tensor of 32-bit float values, but got 'tensor<bf16>'}}
  %0 = moe.cross_entropy %l, %y : (tensor<16x100xbf16>, tensor<16xi32>) -> tensor<bf16>
  return
}
