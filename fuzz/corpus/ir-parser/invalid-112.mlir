func.func @dispatch_result_width(%x: tensor<32x16xf32>, %i: tensor<32x1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects result of shape ExCx16 (model width of the input), found 4x8x32}}
  %0 = moe.dispatch %x, %i, %i : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x8x32xf32>
  return
}
