func.func @add_mask(%x: tensor<4x16xi1>) {
  // expected-error @+1 {{'moe.add' op operand #0 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<4x16xi1>'}}
  %0 = moe.add %x, %x : tensor<4x16xi1>
  return
}
