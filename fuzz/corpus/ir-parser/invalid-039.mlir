//===----------------------------------------------------------------------===//
// moe.activation, moe.add
//===----------------------------------------------------------------------===//

func.func @activation_integer(%x: tensor<4x16xi32>) {
  // expected-error @+1 {{'moe.activation' op operand #0 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<4x16xi32>'}}
  %0 = moe.activation relu %x : tensor<4x16xi32>
  return
}
