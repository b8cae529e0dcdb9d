//===----------------------------------------------------------------------===//
// #moe.init
//===----------------------------------------------------------------------===//

// expected-error @+1 {{init scale must be finite and >= 0, found -2.000000e-02}}
func.func private @init_negative_scale() attributes {init = #moe.init<normal, scale = -0.02>}
