// expected-error @+1 {{gating jitter_eps must be in (0, 1), found 1.000000e+00}}
func.func private @gating_jitter_eps_one() attributes {config = #moe.gating<noise = jitter, jitter_eps = 1.0>}
