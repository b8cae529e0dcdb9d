func.func @attention_heads_divide_width(%q: tensor<2x8x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects the width 16 to be divisible by num_heads 3}}
  %0 = moe.attention %q, %q, %q {num_heads = 3 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}
