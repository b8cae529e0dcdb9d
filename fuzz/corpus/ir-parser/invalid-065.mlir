func.func @attention_causal_cross(%q: tensor<2x8x16xf32>, %k: tensor<2x12x16xf32>) {
  // expected-error @+1 {{'moe.attention' op causal attention expects as many queries as keys, found 8 queries and 12 keys}}
  %0 = moe.attention %q, %k, %k {num_heads = 4 : i64, causal} : (tensor<2x8x16xf32>, tensor<2x12x16xf32>, tensor<2x12x16xf32>) -> tensor<2x8x16xf32>
  return
}
