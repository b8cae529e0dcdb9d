// expected-error @+2 {{expected one of [none, jitter, rsample] for gate noise policy (training only), got: gaussian}}
// expected-error @+1 {{failed to parse Moe_GatingAttr parameter 'noise' which is to be a `::mlir::moe::NoisePolicy`}}
func.func private @gating_unknown_noise() attributes {config = #moe.gating<noise = gaussian>}
