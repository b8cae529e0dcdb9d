// expected-error @+1 {{argument #0: 'moe.init' must be a #moe.init attribute}}
func.func private @init_not_init_attr(tensor<4xf32> {moe.param = "w", moe.init = #moe.gating<>})
