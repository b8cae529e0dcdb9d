// expected-error @+1 {{init 'normal' needs a scale > 0}}
func.func private @init_normal_zero_scale() attributes {init = #moe.init<normal, scale = 0.0>}
