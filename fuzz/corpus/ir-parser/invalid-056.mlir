func.func @attention_query_rank(%q: tensor<8x16xf32>, %k: tensor<2x8x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects query of rank 3, found rank 2 ('tensor<8x16xf32>')}}
  %0 = moe.attention %q, %k, %k {num_heads = 4 : i64} : (tensor<8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<8x16xf32>
  return
}
