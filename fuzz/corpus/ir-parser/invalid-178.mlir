// expected-error @+1 {{gating groups must be at least 1, found -4}}
func.func private @gating_groups_negative() attributes {config = #moe.gating<groups = -4>}
