// expected-error @+1 {{init 'xavier_uniform' needs a scale > 0}}
func.func private @init_xavier_zero_scale() attributes {init = #moe.init<xavier_uniform, scale = 0.0>}
