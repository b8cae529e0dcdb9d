func.func @padding_mask_pad_outside_vocabulary(%tok: tensor<2x8xi32>, %table: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.padding_mask' op expects pad_id in [0, 16) (the vocabulary of the embedding table these tokens index), found 16}}
  %0 = moe.padding_mask %tok {pad_id = 16 : i64} : tensor<2x8xi32> -> tensor<2x8xi1>
  %1 = moe.embedding sinusoidal %tok, %table : (tensor<2x8xi32>, tensor<16x4xf32>) -> tensor<2x8x4xf32>
  return
}
