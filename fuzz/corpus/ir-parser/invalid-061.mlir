func.func @attention_value_shape(%q: tensor<2x8x16xf32>, %k: tensor<2x12x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects value of shape 2x12x16, found 2x8x16}}
  %0 = moe.attention %q, %k, %q {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x12x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}
