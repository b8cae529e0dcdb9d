func.func @combine_element_type(%y: tensor<4x8x16xbf16>, %i: tensor<32x1xi32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'moe.combine' op expects all floating-point operands and results to have element type 'bf16', found 'f32'}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xbf16>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>) -> tensor<32x16xf32>
  return
}
