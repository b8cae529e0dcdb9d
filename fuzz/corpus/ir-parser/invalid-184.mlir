// expected-error @+1 {{init scale must be finite and >= 0, found INF}}
func.func private @init_infinite_scale() attributes {init = #moe.init<uniform, scale = 0x7FF0000000000000>}
