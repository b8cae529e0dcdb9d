// expected-error @+2 {{expected ::mlir::moe::InitKind to be one of: zeros, ones, normal, uniform, xavier_uniform}}
// expected-error @+1 {{failed to parse Moe_InitAttr parameter 'kind' which is to be a `::mlir::moe::InitKind`}}
func.func private @init_unknown_kind() attributes {init = #moe.init<gaussian, scale = 1.0>}
