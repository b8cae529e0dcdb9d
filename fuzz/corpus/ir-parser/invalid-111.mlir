func.func @dispatch_result_rank(%x: tensor<32x16xf32>, %i: tensor<32x1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects result of rank 3, found rank 2 ('tensor<32x16xf32>')}}
  %0 = moe.dispatch %x, %i, %i : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<32x16xf32>
  return
}
