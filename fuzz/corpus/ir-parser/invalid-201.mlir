// expected-error @+1 {{argument #1: unknown moe argument attribute 'moe.parameter' (expected moe.param, moe.init}}
func.func private @unknown_arg_attr(tensor<4xf32>, tensor<4xf32> {moe.parameter = "w"})
