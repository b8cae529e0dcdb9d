func.func @attention_key_mask_element_type(%q: tensor<2x8x16xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'moe.attention' op operand #3 must be ranked tensor of 1-bit signless integer values, but got 'tensor<2x8xi32>'}}
  %0 = moe.attention %q, %q, %q key_mask %m {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8xi32>) -> tensor<2x8x16xf32>
  return
}
