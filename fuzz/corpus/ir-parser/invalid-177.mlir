// expected-error @+1 {{gating groups must be at least 1, found 0}}
func.func private @gating_groups_zero() attributes {config = #moe.gating<groups = 0>}
