// expected-error @+1 {{must be one of "loss", "aux_loss", "expert_counts", "metric"}}
func.func private @role_not_string() -> (tensor<f32> {moe.role = 0 : i64})
