//===----------------------------------------------------------------------===//
// moe.attention
//===----------------------------------------------------------------------===//

func.func @attention_dynamic(%q: tensor<2x?x16xf32>) {
  // expected-error @+1 {{'moe.attention' op operand #0 must have a static shape, found 'tensor<2x?x16xf32>'}}
  %0 = moe.attention %q, %q, %q {num_heads = 4 : i64} : (tensor<2x?x16xf32>, tensor<2x?x16xf32>, tensor<2x?x16xf32>) -> tensor<2x8x16xf32>
  return
}
