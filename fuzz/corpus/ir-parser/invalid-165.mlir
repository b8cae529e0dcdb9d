// expected-error @+1 {{gating top_k must be at least 1, found -2}}
func.func private @gating_top_k_negative() attributes {config = #moe.gating<top_k = -2>}
