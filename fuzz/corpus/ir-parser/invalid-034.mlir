func.func @layer_norm_zero_epsilon(%x: tensor<4x16xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects epsilon > 0, found 0.000000e+00}}
  %0 = moe.layer_norm %x, %g, %g {epsilon = 0.0 : f64} : (tensor<4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  return
}
