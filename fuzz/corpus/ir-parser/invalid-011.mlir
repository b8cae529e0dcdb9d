func.func @embedding_positions_rank(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>, %pos: tensor<128xf32>) {
  // expected-error @+1 {{'moe.embedding' op expects positions of rank 2, found rank 1 ('tensor<128xf32>')}}
  %0 = moe.embedding learned %tok, %table positions %pos : (tensor<2x8xi32>, tensor<100x16xf32>, tensor<128xf32>) -> tensor<2x8x16xf32>
  return
}
