// (The custom form cannot even spell an unranked type: invalid-syntax.mlir.)
func.func @activation_unranked(%x: tensor<*xf32>) {
  // expected-error @+1 {{'moe.activation' op operand #0 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<*xf32>'}}
  %0 = "moe.activation"(%x) <{kind = 1 : i32}> : (tensor<*xf32>) -> tensor<*xf32>
  return
}
