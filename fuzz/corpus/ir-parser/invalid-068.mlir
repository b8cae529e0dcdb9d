func.func @attention_result_type(%q: tensor<2x8x16xf32>, %k: tensor<2x12x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects the result type 'tensor<2x12x16xf32>' to equal the query type 'tensor<2x8x16xf32>'}}
  %0 = moe.attention %q, %k, %k {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x12x16xf32>, tensor<2x12x16xf32>) -> tensor<2x12x16xf32>
  return
}
