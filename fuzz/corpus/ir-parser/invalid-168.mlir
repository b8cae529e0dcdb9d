// expected-error @+1 {{gating capacity_factor must be a finite value > 0, found INF}}
func.func private @gating_capacity_factor_infinite() attributes {config = #moe.gating<capacity_factor = 0x7FF0000000000000>}
