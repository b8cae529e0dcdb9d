// expected-error @+1 {{gating capacity_factor must be a finite value > 0, found nan}}
func.func private @gating_capacity_factor_nan() attributes {config = #moe.gating<capacity_factor = 0x7FF8000000000000>}
