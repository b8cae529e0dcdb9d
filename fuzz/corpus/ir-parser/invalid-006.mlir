func.func @embedding_scalar_tokens(%tok: tensor<i32>, %table: tensor<100x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op expects tokens of rank >= 1, found a scalar}}
  %0 = moe.embedding none %tok, %table : (tensor<i32>, tensor<100x16xf32>) -> tensor<16xf32>
  return
}
