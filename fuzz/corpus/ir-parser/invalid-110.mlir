func.func @dispatch_locations_shape(%x: tensor<32x16xf32>, %i: tensor<32x2xi32>, %l: tensor<32x1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects indices, locations and weights of one shape, found 32x2 and 32x1}}
  %0 = moe.dispatch %x, %i, %l : (tensor<32x16xf32>, tensor<32x2xi32>, tensor<32x1xi32>) -> tensor<4x8x16xf32>
  return
}
