func.func @linear_weight_element_type(%x: tensor<4x16xf32>, %w: tensor<16x8xbf16>) {
  // expected-error @+1 {{'moe.linear' op expects all floating-point operands and results to have element type 'f32', found 'bf16'}}
  %0 = moe.linear %x, %w : (tensor<4x16xf32>, tensor<16x8xbf16>) -> tensor<4x8xf32>
  return
}
