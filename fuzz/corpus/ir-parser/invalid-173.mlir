// expected-error @+1 {{gating min_capacity must be >= 0, found -1}}
func.func private @gating_min_capacity_negative() attributes {config = #moe.gating<min_capacity = -1>}
