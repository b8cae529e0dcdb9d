// expected-error @+2 {{expected 'true' or 'false', found 'True'}}
// expected-error @+1 {{failed to parse Moe_GatingAttr parameter 'use_rts' which is to be a `bool`}}
func.func private @gating_bool_capitalised() attributes {config = #moe.gating<use_rts = True>}
