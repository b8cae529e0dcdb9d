func.func @embedding_positions_with_none(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>, %pos: tensor<8x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op has a 'positions' table but position is 'none'}}
  %0 = moe.embedding none %tok, %table positions %pos : (tensor<2x8xi32>, tensor<100x16xf32>, tensor<8x16xf32>) -> tensor<2x8x16xf32>
  return
}
