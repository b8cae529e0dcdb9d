//===----------------------------------------------------------------------===//
// moe.linear
//===----------------------------------------------------------------------===//

func.func @linear_integer_input(%x: tensor<4x16xi32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.linear' op operand #0 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<4x16xi32>'}}
  %0 = moe.linear %x, %w : (tensor<4x16xi32>, tensor<16x8xf32>) -> tensor<4x8xf32>
  return
}
