// expected-error @+1 {{init scale must be finite and >= 0, found nan}}
func.func private @init_nan_scale() attributes {init = #moe.init<zeros, scale = 0x7FF8000000000000>}
