func.func @embedding_table_rank(%tok: tensor<2x8xi32>, %table: tensor<1600xf32>) {
  // expected-error @+1 {{'moe.embedding' op expects table of rank 2, found rank 1 ('tensor<1600xf32>')}}
  %0 = moe.embedding none %tok, %table : (tensor<2x8xi32>, tensor<1600xf32>) -> tensor<2x8x16xf32>
  return
}
