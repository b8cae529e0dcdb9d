func.func @layer_norm_integer_epsilon(%x: tensor<4x16xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op attribute 'epsilon' failed to satisfy constraint: 64-bit float attribute}}
  %0 = moe.layer_norm %x, %g, %g {epsilon = 1 : i64} : (tensor<4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  return
}
