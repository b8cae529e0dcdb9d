// expected-error @+1 {{gating eval_capacity_factor must be a finite value > 0, found -2.000000e+00}}
func.func private @gating_eval_capacity_factor_negative() attributes {config = #moe.gating<eval_capacity_factor = -2.0>}
