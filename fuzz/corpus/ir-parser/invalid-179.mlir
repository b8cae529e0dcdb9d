// expected-error @+2 {{expected 'true' or 'false', found 'yes'}}
// expected-error @+1 {{failed to parse Moe_GatingAttr parameter 'drop_tokens' which is to be a `bool`}}
func.func private @gating_bool_keyword() attributes {config = #moe.gating<drop_tokens = yes>}
