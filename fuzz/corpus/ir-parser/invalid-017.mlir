func.func @linear_f64_weight(%x: tensor<4x16xf32>, %w: tensor<16x8xf64>) {
  // expected-error @+1 {{'moe.linear' op operand #1 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<16x8xf64>'}}
  %0 = moe.linear %x, %w : (tensor<4x16xf32>, tensor<16x8xf64>) -> tensor<4x8xf32>
  return
}
