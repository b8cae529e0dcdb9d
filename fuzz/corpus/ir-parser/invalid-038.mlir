func.func @layer_norm_scale_element_type(%x: tensor<4x16xf32>, %g: tensor<16xbf16>, %b: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects all floating-point operands and results to have element type 'f32', found 'bf16'}}
  %0 = moe.layer_norm %x, %g, %b : (tensor<4x16xf32>, tensor<16xbf16>, tensor<16xf32>) -> tensor<4x16xf32>
  return
}
