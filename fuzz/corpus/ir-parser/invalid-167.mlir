// expected-error @+1 {{gating capacity_factor must be a finite value > 0, found -1.250000e+00}}
func.func private @gating_capacity_factor_negative() attributes {config = #moe.gating<capacity_factor = -1.25>}
