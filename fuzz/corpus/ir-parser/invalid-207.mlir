// expected-error @+1 {{must be one of "loss", "aux_loss", "expert_counts", "metric"}}
func.func private @role_case() -> (tensor<f32> {moe.role = "loss"}, tensor<f32> {moe.role = "metric"}, tensor<f32> {moe.role = "Loss"})
