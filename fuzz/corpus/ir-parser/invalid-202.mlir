// expected-error @+1 {{argument #0: unknown moe argument attribute 'moe.role' (expected moe.param, moe.init}}
func.func private @role_on_argument(tensor<f32> {moe.role = "loss"})
