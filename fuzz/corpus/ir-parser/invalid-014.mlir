func.func @embedding_result_element_type(%tok: tensor<2x8xi32>, %table: tensor<100x16xbf16>) {
  // expected-error @+1 {{'moe.embedding' op expects all floating-point operands and results to have element type 'bf16', found 'f32'}}
  %0 = moe.embedding none %tok, %table : (tensor<2x8xi32>, tensor<100x16xbf16>) -> tensor<2x8x16xf32>
  return
}
