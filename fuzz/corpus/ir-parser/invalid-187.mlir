// expected-error @+1 {{init 'uniform' needs a scale > 0}}
func.func private @init_uniform_zero_scale() attributes {init = #moe.init<uniform, scale = 0.0>}
