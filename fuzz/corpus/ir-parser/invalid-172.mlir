// expected-error @+1 {{gating eval_capacity_factor must be a finite value > 0, found INF}}
func.func private @gating_eval_capacity_factor_infinite() attributes {config = #moe.gating<eval_capacity_factor = 0x7FF0000000000000>}
