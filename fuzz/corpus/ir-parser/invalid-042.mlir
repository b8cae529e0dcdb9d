func.func @add_operand_types(%x: tensor<4x16xf32>, %y: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.add' op requires the same type for all operands and results}}
  %0 = "moe.add"(%x, %y) : (tensor<4x16xf32>, tensor<4x8xf32>) -> tensor<4x16xf32>
  return
}
