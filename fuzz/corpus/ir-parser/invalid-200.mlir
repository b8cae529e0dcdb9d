// expected-error @+1 {{argument #0: an argument cannot be both a parameter and a batch input}}
func.func private @param_and_input(tensor<2x8xi32> {moe.param = "tok", moe.input = "tok"})
