func.func @attention_zero_heads(%q: tensor<2x8x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects num_heads >= 1, found 0}}
  %0 = moe.attention %q, %q, %q {num_heads = 0 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}
