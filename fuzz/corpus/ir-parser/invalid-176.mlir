// expected-error @+1 {{gating jitter_eps must be in (0, 1), found -1.000000e-02}}
func.func private @gating_jitter_eps_negative() attributes {config = #moe.gating<jitter_eps = -0.01>}
