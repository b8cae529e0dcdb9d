func.func @linear_dynamic_input(%x: tensor<?x16xf32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.linear' op operand #0 must have a static shape, found 'tensor<?x16xf32>'}}
  %0 = moe.linear %x, %w : (tensor<?x16xf32>, tensor<16x8xf32>) -> tensor<4x8xf32>
  return
}
