func.func @dispatch_float_indices(%x: tensor<32x16xf32>, %i: tensor<32x1xf32>) {
  // expected-error @+1 {{'moe.dispatch' op operand #1 must be ranked tensor of 32-bit signless integer values, but got 'tensor<32x1xf32>'}}
  %0 = moe.dispatch %x, %i, %i : (tensor<32x16xf32>, tensor<32x1xf32>, tensor<32x1xf32>) -> tensor<4x8x16xf32>
  return
}
