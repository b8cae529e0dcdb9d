func.func @cross_entropy_labels_shape(%l: tensor<2x8x100xf32>, %y: tensor<16xi32>) {
  // expected-error @+1 {{'moe.cross_entropy' op expects labels of shape 2x8, found 16}}
  %0 = moe.cross_entropy %l, %y : (tensor<2x8x100xf32>, tensor<16xi32>) -> tensor<f32>
  return
}
