func.func @attention_negative_heads(%q: tensor<2x8x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects num_heads >= 1, found -4}}
  %0 = moe.attention %q, %q, %q {num_heads = -4 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}
