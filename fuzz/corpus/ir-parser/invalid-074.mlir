func.func @cross_entropy_negative_smoothing(%l: tensor<16x100xf32>, %y: tensor<16xi32>) {
  // expected-error @+1 {{'moe.cross_entropy' op expects label_smoothing in [0, 1), found -5.000000e-01}}
  %0 = moe.cross_entropy %l, %y {label_smoothing = -0.5 : f64} : (tensor<16x100xf32>, tensor<16xi32>) -> tensor<f32>
  return
}
