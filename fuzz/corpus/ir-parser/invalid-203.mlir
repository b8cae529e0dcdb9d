// expected-error @+1 {{result #1: unknown moe result attribute 'moe.input' (expected moe.role}}
func.func private @unknown_result_attr() -> (tensor<f32> {moe.role = "loss"}, tensor<2x8xi32> {moe.input = "tokens"})
