func.func @embedding_dynamic_tokens(%tok: tensor<?x8xi32>, %table: tensor<100x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op operand #0 must have a static shape, found 'tensor<?x8xi32>'}}
  %0 = moe.embedding none %tok, %table : (tensor<?x8xi32>, tensor<100x16xf32>) -> tensor<2x8x16xf32>
  return
}
