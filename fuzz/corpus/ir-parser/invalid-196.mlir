// expected-error @+1 {{argument #0: 'moe.init' must be a #moe.init attribute}}
func.func private @init_float(tensor<4xf32> {moe.param = "w", moe.init = 0.02 : f64})
