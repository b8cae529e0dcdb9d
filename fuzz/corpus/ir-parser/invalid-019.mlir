func.func @linear_weight_rank(%x: tensor<4x16xf32>, %w: tensor<2x16x8xf32>) {
  // expected-error @+1 {{'moe.linear' op expects weight of rank 2, found rank 3 ('tensor<2x16x8xf32>')}}
  %0 = moe.linear %x, %w : (tensor<4x16xf32>, tensor<2x16x8xf32>) -> tensor<4x8xf32>
  return
}
