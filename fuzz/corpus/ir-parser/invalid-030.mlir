func.func @layer_norm_scale_shape(%x: tensor<4x16xf32>, %g: tensor<4x16xf32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects scale of shape 16, found 4x16}}
  %0 = moe.layer_norm %x, %g, %b : (tensor<4x16xf32>, tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  return
}
