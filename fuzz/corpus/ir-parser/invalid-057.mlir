func.func @attention_key_rank(%q: tensor<2x8x16xf32>, %k: tensor<2x2x8x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects key of rank 3, found rank 4 ('tensor<2x2x8x16xf32>')}}
  %0 = moe.attention %q, %k, %q {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}
