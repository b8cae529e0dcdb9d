func.func @attention_missing_heads(%q: tensor<2x8x16xf32>) {
  // expected-error @+1 {{'moe.attention' op requires attribute 'num_heads'}}
  %0 = moe.attention %q, %q, %q : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}
