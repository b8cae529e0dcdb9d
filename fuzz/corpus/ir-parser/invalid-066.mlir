func.func @attention_key_mask_shape(%q: tensor<2x8x16xf32>, %k: tensor<2x12x16xf32>, %m: tensor<2x8xi1>) {
  // expected-error @+1 {{'moe.attention' op expects key_mask of shape 2x12, found 2x8}}
  %0 = moe.attention %q, %k, %k key_mask %m {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x12x16xf32>, tensor<2x12x16xf32>, tensor<2x8xi1>) -> tensor<2x8x16xf32>
  return
}
