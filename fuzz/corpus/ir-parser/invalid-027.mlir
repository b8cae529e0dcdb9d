func.func @linear_bias_element_type(%x: tensor<4x16xbf16>, %w: tensor<16x8xbf16>, %b: tensor<8xf16>) {
  // expected-error @+1 {{'moe.linear' op expects all floating-point operands and results to have element type 'bf16', found 'f16'}}
  %0 = moe.linear %x, %w, %b : (tensor<4x16xbf16>, tensor<16x8xbf16>, tensor<8xf16>) -> tensor<4x8xbf16>
  return
}
