func.func @embedding_positions_width(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>, %pos: tensor<8x32xf32>) {
  // expected-error @+1 {{'moe.embedding' op expects positions of width 16 (the table's), found 32}}
  %0 = moe.embedding learned %tok, %table positions %pos : (tensor<2x8xi32>, tensor<100x16xf32>, tensor<8x32xf32>) -> tensor<2x8x16xf32>
  return
}
