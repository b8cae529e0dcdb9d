func.func @layer_norm_nan_epsilon(%x: tensor<4x16xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects epsilon > 0, found nan}}
  %0 = moe.layer_norm %x, %g, %g {epsilon = 0x7FF8000000000000 : f64} : (tensor<4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  return
}
