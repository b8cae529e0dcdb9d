// expected-error @+1 {{argument #1: 'moe.param' must be a non-empty string}}
func.func private @param_empty(tensor<4xf32> {moe.param = "a"}, tensor<4xf32> {moe.param = ""})
