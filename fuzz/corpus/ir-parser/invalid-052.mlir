func.func @padding_mask_negative_pad(%tok: tensor<2x8xi32>) {
  // expected-error @+1 {{'moe.padding_mask' op expects pad_id >= 0 (a token id), found -1}}
  %0 = moe.padding_mask %tok {pad_id = -1 : i64} : tensor<2x8xi32> -> tensor<2x8xi1>
  return
}
