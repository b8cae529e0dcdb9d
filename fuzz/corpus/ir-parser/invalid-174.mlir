// expected-error @+1 {{gating jitter_eps must be in (0, 1), found 0.000000e+00}}
func.func private @gating_jitter_eps_zero() attributes {config = #moe.gating<noise = jitter, jitter_eps = 0.0>}
