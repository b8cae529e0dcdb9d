func.func @dispatch_element_type(%x: tensor<32x16xf32>, %i: tensor<32x1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects all floating-point operands and results to have element type 'f32', found 'bf16'}}
  %0 = moe.dispatch %x, %i, %i : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x8x16xbf16>
  return
}
