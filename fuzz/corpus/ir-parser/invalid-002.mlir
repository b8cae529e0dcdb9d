func.func @embedding_unranked_table(%tok: tensor<2x8xi32>, %table: tensor<*xf32>) {
  // expected-error @+1 {{'moe.embedding' op operand #1 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<*xf32>'}}
  %0 = moe.embedding none %tok, %table : (tensor<2x8xi32>, tensor<*xf32>) -> tensor<2x8x16xf32>
  return
}
