// expected-error @+1 {{argument #0: a parameter must be a ranked tensor, found 'f32'}}
func.func private @param_not_tensor(f32 {moe.param = "w"})
