// expected-error @+1 {{argument #2: parameter name 'ffn.w1' is already used by argument #0}}
func.func @param_duplicate(%a: tensor<4xf32> {moe.param = "ffn.w1"}, %b: tensor<4xf32> {moe.param = "ffn.w2"}, %c: tensor<4xf32> {moe.param = "ffn.w1"}) {
  return
}
