func.func @embedding_integer_table(%tok: tensor<2x8xi32>, %table: tensor<100x16xi32>) {
  // expected-error @+1 {{'moe.embedding' op operand #1 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<100x16xi32>'}}
  %0 = moe.embedding none %tok, %table : (tensor<2x8xi32>, tensor<100x16xi32>) -> tensor<2x8x16xf32>
  return
}
