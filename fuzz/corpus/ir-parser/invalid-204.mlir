// Gradient results name their parameter with moe.param.
// expected-error @+1 {{result #0: 'moe.param' must be a non-empty string}}
func.func private @result_param_empty() -> (tensor<4xf32> {moe.param = ""})
