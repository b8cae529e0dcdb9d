// expected-error @+1 {{argument #0: a parameter must be a ranked tensor, found 'tensor<*xf32>'}}
func.func private @param_unranked(tensor<*xf32> {moe.param = "w"})
