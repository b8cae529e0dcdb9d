// expected-error @+2 {{expected valid keyword}}
// expected-error @+1 {{failed to parse Moe_GatingAttr parameter 'second_sampling' which is to be a `bool`}}
func.func private @gating_bool_integer() attributes {config = #moe.gating<second_sampling = 1>}
