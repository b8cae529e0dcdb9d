func.func @embedding_learned_without_positions(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op with learned positions expects a 'positions' table}}
  %0 = moe.embedding learned %tok, %table : (tensor<2x8xi32>, tensor<100x16xf32>) -> tensor<2x8x16xf32>
  return
}
