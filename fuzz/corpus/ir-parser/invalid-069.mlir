func.func @attention_element_type(%q: tensor<2x8x16xf32>, %k: tensor<2x8x16xbf16>) {
  // expected-error @+1 {{'moe.attention' op expects all floating-point operands and results to have element type 'f32', found 'bf16'}}
  %0 = moe.attention %q, %k, %k {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xbf16>, tensor<2x8x16xbf16>) -> tensor<2x8x16xf32>
  return
}
