func.func @cross_entropy_float_labels(%l: tensor<16x100xf32>, %y: tensor<16xf32>) {
  // expected-error @+1 {{'moe.cross_entropy' op operand #1 must be ranked tensor of 32-bit signless integer values, but got 'tensor<16xf32>'}}
  %0 = moe.cross_entropy %l, %y : (tensor<16x100xf32>, tensor<16xf32>) -> tensor<f32>
  return
}
