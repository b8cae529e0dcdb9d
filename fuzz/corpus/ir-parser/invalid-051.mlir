func.func @padding_mask_result_element_type(%tok: tensor<2x8xi32>) {
  // expected-error @+1 {{'moe.padding_mask' op result #0 must be ranked tensor of 1-bit signless integer values, but got 'tensor<2x8xi32>'}}
  %0 = moe.padding_mask %tok {pad_id = 1 : i64} : tensor<2x8xi32> -> tensor<2x8xi32>
  return
}
