func.func @embedding_too_few_positions(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>, %pos: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op expects at least 8 positions (the sequence length), found 4}}
  %0 = moe.embedding learned %tok, %table positions %pos : (tensor<2x8xi32>, tensor<100x16xf32>, tensor<4x16xf32>) -> tensor<2x8x16xf32>
  return
}
