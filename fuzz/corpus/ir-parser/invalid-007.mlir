func.func @embedding_result_shape(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op expects result of shape 2x8x16, found 2x8x32}}
  %0 = moe.embedding none %tok, %table : (tensor<2x8xi32>, tensor<100x16xf32>) -> tensor<2x8x32xf32>
  return
}
