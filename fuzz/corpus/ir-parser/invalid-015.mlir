func.func @embedding_positions_element_type(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>, %pos: tensor<8x16xf16>) {
  // expected-error @+1 {{'moe.embedding' op expects all floating-point operands and results to have element type 'f32', found 'f16'}}
  %0 = moe.embedding learned %tok, %table positions %pos : (tensor<2x8xi32>, tensor<100x16xf32>, tensor<8x16xf16>) -> tensor<2x8x16xf32>
  return
}
