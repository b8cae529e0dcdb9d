func.func @layer_norm_result_element_type(%x: tensor<4x16xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects the result type 'tensor<4x16xf16>' to equal the input type 'tensor<4x16xf32>'}}
  %0 = moe.layer_norm %x, %g, %g : (tensor<4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16xf16>
  return
}
