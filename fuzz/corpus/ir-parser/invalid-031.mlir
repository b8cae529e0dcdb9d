func.func @layer_norm_bias_shape(%x: tensor<4x16xf32>, %g: tensor<16xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects bias of shape 16, found 8}}
  %0 = moe.layer_norm %x, %g, %b : (tensor<4x16xf32>, tensor<16xf32>, tensor<8xf32>) -> tensor<4x16xf32>
  return
}
