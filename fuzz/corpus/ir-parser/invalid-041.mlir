func.func @activation_result_type(%x: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.activation' op requires the same type for all operands and results}}
  %0 = "moe.activation"(%x) <{kind = 3 : i32}> : (tensor<4x16xf32>) -> tensor<4x16xbf16>
  return
}
