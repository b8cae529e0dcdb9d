func.func @padding_mask_result_shape(%tok: tensor<2x8xi32>) {
  // expected-error @+1 {{'moe.padding_mask' op expects result of shape 2x8, found 16}}
  %0 = moe.padding_mask %tok {pad_id = 1 : i64} : tensor<2x8xi32> -> tensor<16xi1>
  return
}
