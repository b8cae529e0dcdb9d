// expected-error @+1 {{gating capacity_factor must be a finite value > 0, found 0.000000e+00}}
func.func private @gating_capacity_factor_zero() attributes {config = #moe.gating<capacity_factor = 0.0>}
