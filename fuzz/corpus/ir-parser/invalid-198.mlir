// expected-error @+1 {{argument #0: 'moe.input' must be a non-empty string}}
func.func private @input_empty(tensor<2x8xi32> {moe.input = ""})
