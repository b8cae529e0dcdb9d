func.func @embedding_dynamic_result(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op result #0 must have a static shape, found 'tensor<2x8x?xf32>'}}
  %0 = moe.embedding none %tok, %table : (tensor<2x8xi32>, tensor<100x16xf32>) -> tensor<2x8x?xf32>
  return
}
