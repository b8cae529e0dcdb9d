func.func @attention_value_rank(%q: tensor<2x8x16xf32>, %v: tensor<16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects value of rank 3, found rank 1 ('tensor<16xf32>')}}
  %0 = moe.attention %q, %q, %v {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<16xf32>) -> tensor<2x8x16xf32>
  return
}
