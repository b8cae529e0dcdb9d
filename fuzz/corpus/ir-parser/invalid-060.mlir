func.func @attention_key_width(%q: tensor<2x8x16xf32>, %k: tensor<2x12x32xf32>) {
  // expected-error @+1 {{'moe.attention' op expects key of shape 2x?x16 (batch and width of the query), found 2x12x32}}
  %0 = moe.attention %q, %k, %k {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x12x32xf32>, tensor<2x12x32xf32>) -> tensor<2x8x16xf32>
  return
}
